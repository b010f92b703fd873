"""The tasks ``omnihook demo`` submits, and what each must end as.

Each case is one workflow of the Omni Video API, or one way the provider misbehaves; the
``[sim:...]`` directives in the prompts steer the simulated provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The demo's image URL is only ever handed to the (simulated) provider, never fetched by us.
DEMO_FIRST_FRAME = "https://images.example.com/omnihook-demo/lighthouse.png"

#: (fewest, most) times an event type may appear in a task's timeline.
Bounds = tuple[int, int]


@dataclass(frozen=True)
class DemoCase:
    name: str
    kind: str
    request: dict[str, Any]
    succeeds: bool = True
    videos: int = 1
    # Event types that may legitimately be skipped, e.g. `task.processing` when the provider's
    # final callback overtakes it.
    optional_events: frozenset[str] = field(default_factory=frozenset)

    def expected_events(self) -> dict[str, Bounds]:
        """How often each event type must appear; any type not listed must not appear."""
        if self.succeeds:
            counts = {
                "task.submitted": 1,
                "task.processing": 1,
                "task.succeeded": 1,
                "video.downloaded": self.videos,
                "task.completed": 1,
            }
        else:
            counts = {"task.submitted": 1, "task.processing": 1, "task.failed": 1}
        bounds = {
            kind: (0 if kind in self.optional_events else count, count)
            for kind, count in counts.items()
        }
        # The simulated account runs DEMO_SLOTS tasks at once: whether this one waited for a
        # slot depends on how fast the others went.
        bounds["task.queued"] = (0, 1)
        return bounds

    @property
    def expected_status(self) -> str:
        return "succeeded" if self.succeeds else "failed"


def demo_cases(run_id: str) -> list[DemoCase]:
    """The five demo tasks; ``run_id`` keeps external ids unique across runs."""

    def request(name: str, fields: dict[str, Any]) -> dict[str, Any]:
        return {
            "model_name": "kling-v3-omni",
            "mode": "std",
            "external_task_id": f"demo-{run_id}-{name}",
            "metadata": {"demo": name, "run": run_id},
            **fields,
        }

    text = request(
        "text",
        {
            "prompt": "A red fox trots through fresh snow at dawn",
            "duration": "5",
            "aspect_ratio": "16:9",
        },
    )
    image = request(
        "image",
        {
            "prompt": "The lighthouse beam sweeps across a stormy sea",
            "duration": "5",
            "image_list": [{"image_url": DEMO_FIRST_FRAME, "type": "first_frame"}],
        },
    )
    shots = [
        "Wide shot: a cyclist crests a hill at sunrise",
        "Close-up: the cyclist's face, breath fogging in the cold",
        "Aerial: the road winds down into a misty valley",
    ]
    multi_shot = request(
        "multi",
        {
            "multi_shot": True,
            "shot_type": "customize",
            "duration": "9",
            "aspect_ratio": "9:16",
            "multi_prompt": [
                {"index": number, "prompt": prompt, "duration": "3"}
                for number, prompt in enumerate(shots, start=1)
            ],
        },
    )
    fails = request(
        "fails",
        {"prompt": "A paper boat on a puddle [sim:fail]", "duration": "5", "aspect_ratio": "1:1"},
    )
    robust = request(
        "robust",
        {
            "prompt": "Fireflies over a summer meadow [sim:duplicate] [sim:reorder] [sim:videos=2]",
            "duration": "5",
            "aspect_ratio": "16:9",
        },
    )
    return [
        DemoCase("text", "text to video", text),
        DemoCase("image", "first frame", image),
        DemoCase("multi", "multi-shot, 3 shots", multi_shot),
        DemoCase("fails", "provider fails", fails, succeeds=False),
        DemoCase(
            "robust",
            "dup + reorder, 2 videos",
            robust,
            videos=2,
            optional_events=frozenset({"task.processing"}),
        ),
    ]
