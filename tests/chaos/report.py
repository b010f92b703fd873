"""What one chaos scenario did and checked: printed as one line (``pytest -s`` shows it) and
appended, as a JSON line, to ``chaos-summary.jsonl`` in pytest's base temporary directory."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

SUMMARY_FILE = "chaos-summary.jsonl"


@dataclass
class ScenarioReport:
    scenario: str
    seed: int
    kills: Counter[str] = field(default_factory=Counter)  # stage -> SIGKILLs survived
    faults: Counter[str] = field(default_factory=Counter)  # "proxy:kind" -> injected
    tasks: int = 0
    notifications_acknowledged: int = 0
    # the others, by the service's answer: 503 while it cannot store them, "no answer" while
    # it is down (the provider's records; they come back through reconciliation)
    callbacks_not_acknowledged: Counter[str] = field(default_factory=Counter)
    events: int = 0
    videos: int = 0
    deliveries_checked: int = 0
    handler_runs_checked: int = 0
    problems: list[str] = field(default_factory=list)  # invariants broken (empty: nothing lost)
    temp_files_left: list[str] = field(default_factory=list)  # in the media dir, after kills
    seconds: float = 0.0

    def line(self) -> str:
        kills = ", ".join(f"{stage} {n}" for stage, n in sorted(self.kills.items())) or "none"
        faults = ", ".join(f"{kind} {n}" for kind, n in sorted(self.faults.items())) or "none"
        verdict = "nothing lost" if not self.problems else f"{len(self.problems)} problems"
        if self.temp_files_left:
            verdict += f"; {len(self.temp_files_left)} temporary files left in the media dir"
        return (
            f"chaos[{self.scenario}] seed={self.seed}: {sum(self.kills.values())} kills survived"
            f" ({kills}); faults injected: {faults}; {self.tasks} tasks,"
            f" {self.notifications_acknowledged} acknowledged notifications"
            f" (not: {dict(self.callbacks_not_acknowledged) or 'none'}), {self.events} events,"
            f" {self.videos} videos, {self.deliveries_checked} deliveries,"
            f" {self.handler_runs_checked} handler runs checked: {verdict}"
            f" ({self.seconds:.0f} s)"
        )

    def write(self, directory: Path) -> None:
        print("\n" + self.line(), flush=True)
        record = {
            **asdict(self),
            "kills": dict(self.kills),
            "faults": dict(self.faults),
            "callbacks_not_acknowledged": dict(self.callbacks_not_acknowledged),
        }
        with (directory / SUMMARY_FILE).open("a") as out:
            out.write(json.dumps(record) + "\n")
