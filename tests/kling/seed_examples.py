"""Every create body the seed pages (``shared/seeds``) show, as their pages show it.

Each is sent to omnihook as it stands (``POST /v1/tasks``), under the ``OMNIHOOK_PROVIDER``
shape of its vendor. Where a page gives no literal body but spells one out in words (CometAPI),
the body is built from its words. ``callback_url`` is left out: omnihook sets it itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SeedExample:
    name: str
    provider: str  # the OMNIHOOK_PROVIDER shape of the vendor
    body: dict[str, Any]


SEED_EXAMPLES = [
    # seed 000, PowerTokens: the page's curl example (no aspect_ratio, mode or duration).
    SeedExample(
        "PowerTokens text to video",
        "kling",
        {"model_name": "kling-video-o1", "prompt": "A product reveal video with smooth lighting"},
    ),
    # seed 004, CometAPI: "send prompt, mode, aspect_ratio, and duration", "omit model_name to
    # use the route default".
    SeedExample(
        "CometAPI text to video without model_name",
        "kling",
        {
            "prompt": "A paper boat drifting down a rainy street",
            "mode": "pro",
            "aspect_ratio": "16:9",
            "duration": "5",
        },
    ),
    # seed 004, CometAPI: a first-frame image ("add image_list items with image_url and type").
    SeedExample(
        "CometAPI first frame",
        "kling",
        {
            "prompt": "The boat sails away",
            "image_list": [{"image_url": "https://example.com/boat.png", "type": "first_frame"}],
        },
    ),
    # seed 001, EzModel: its four curl examples.
    SeedExample(
        "EzModel text to video",
        "newapi",
        {
            "model": "kling-v3-omni",
            "prompt": "A fox running through a sunlit forest with dappled light filtering through"
            " the leaves",
            "duration": "10",
            "aspect_ratio": "16:9",
            "sound": "on",
        },
    ),
    SeedExample(
        "EzModel first/end frame",
        "newapi",
        {
            "model": "kling-v3-omni",
            "prompt": "The character slowly sits down from a standing position",
            "image_list": [
                {"image_url": "https://example.com/start.jpg", "type": "first_frame"},
                {"image_url": "https://example.com/end.jpg", "type": "end_frame"},
            ],
            "duration": "5",
        },
    ),
    SeedExample(
        "EzModel multi-shot",
        "newapi",
        {
            "model": "kling-v3-omni",
            "multi_prompt": [
                {
                    "prompt": "A girl pushes open the door of a coffee shop and walks in, camera"
                    " follows",
                    "duration": "4",
                },
                {
                    "prompt": "The girl sits by the window, opens her laptop, close-up shot",
                    "duration": "4",
                },
                {
                    "prompt": "Rain starts falling outside, the girl smiles and looks out the"
                    " window, medium shot",
                    "duration": "5",
                },
            ],
            "aspect_ratio": "16:9",
            "mode": "pro",
            "sound": "on",
        },
    ),
    SeedExample(
        "EzModel video editing",
        "newapi",
        {
            "model": "kling-v3-omni",
            "prompt": "Replace the background with a snowy mountain landscape",
            "video_list": [
                {
                    "video_url": "https://example.com/original.mp4",
                    "refer_type": "base",
                    "keep_original_sound": "yes",
                }
            ],
        },
    ),
    # seed 002, apimodels: its curl example.
    SeedExample(
        "apimodels text to video",
        "apimodels",
        {
            "model": "kling-video-o1",
            "prompt": "A girl dancing on the beach at sunset, cinematic lighting",
            "mode": "std",
            "duration": "5",
            "aspect_ratio": "16:9",
        },
    ),
]

# seed 003 (a generic new-api page) shows ``"model": "kling-v1"``, which is not an Omni model
# (kling-api.md §3 knows kling-video-o1 and kling-v3-omni): it is refused, by name, before
# anything is paid for.
NOT_AN_OMNI_MODEL = SeedExample(
    "new-api mixed input with kling-v1",
    "newapi",
    {
        "model": "kling-v1",
        "prompt": "Make the character move",
        "image_list": [{"image_url": "https://example.com/start.jpg", "type": "first_frame"}],
        "duration": "5",
    },
)
