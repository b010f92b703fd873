"""The admission queue: tasks wait ``queued`` for a free provider slot, then are sent.

See :mod:`service.submit.admission.dispatch` for how a task enters and leaves the queue,
:mod:`service.provider_slots` for ``OMNIHOOK_PROVIDER_CONCURRENCY`` and
:mod:`service.submit.admission.pace` for how busy answers (1303/1302) slow the sending down.
"""
