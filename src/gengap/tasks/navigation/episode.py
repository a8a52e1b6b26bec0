"""The route episode: the agent replays the rail one decision point at a time.

`reset()` shows the first point; `step(completion)` judges the completion at the current point
(`Task.verify` of that point's sample). A correct action moves the agent to the next point: the
next observation is a fresh prompt for it (the history now one step longer, and in the image
variant the new point's view grid). A wrong action is retried with the verifier's message
appended, up to `verify_iters` scored attempts per point (2 in the study); after that the point
counts as failed and the episode ends (``on_fail="end"``, what the study's environment does: it
truncates) or moves on (``on_fail="continue"``), except at the destination, where it always
ends. The episode succeeds when it reaches and stops at the destination with no failed point.

`metrics()`: ``route_step_accuracy`` (correct actions / all attempts, retries counted: the
study's per-step accuracy) and ``route_progress`` (share of the rail's points passed).
`oracle()` is the correct completion at the current point, so a driver can replay the rail or
curate SFT targets per decision point with the history.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gengap.errors import InputError
from gengap.tasks.base import Message, Observation, Sample, Step, Verdict
from gengap.tasks.navigation.actions import STOP

ON_FAIL = ("end", "continue")


class RouteEpisode:
    """A multi-step episode over one route sample (see the module docstring)."""

    def __init__(self, task: Any, sample: Sample, verify_iters: int, on_fail: str = "end"):
        if verify_iters < 1:
            raise InputError(f"verify_iters must be >= 1, got {verify_iters}")
        if on_fail not in ON_FAIL:
            raise InputError(f"on_fail must be one of {ON_FAIL}, got {on_fail!r}")
        self.task, self.sample = task, sample
        self.verify_iters, self.on_fail = verify_iters, on_fail
        self.rail = sample.fields["rail"]
        self.reset()

    # -- state -------------------------------------------------------------------------------
    @property
    def position(self) -> int:
        """Index of the current decision point on the rail."""
        return self._pos

    def point_sample(self, position: int | None = None) -> Sample:
        """The decision-point sample at `position` (default: the current one)."""
        return self.task.point_sample(self.sample, self._pos if position is None else position)

    def oracle(self) -> str:
        """The correct completion at the current point (the task's SFT target there)."""
        return self.task.target(self.point_sample())

    def _observe(self) -> Observation:
        point = self.point_sample()
        self._messages: list[Message] = list(self.task.messages(point))
        self._images = tuple(self.task.images(point))
        return Observation(list(self._messages), self._images)

    # -- Episode -----------------------------------------------------------------------------
    def reset(self) -> Observation:
        self._pos, self._tries, self._failed, self._finished = 0, 0, False, False
        self._passed = 0
        self.verdicts: list[Verdict] = []
        return self._observe()

    def step(self, completion: str) -> Step:
        if self._finished:
            raise InputError("the episode has ended", hint="call reset() to start again")
        verdict = self.task.verify(self.point_sample(), completion)
        verdict = dataclasses.replace(verdict, info={**verdict.info, "point": self._pos})
        self.verdicts.append(verdict)
        self._tries += 1
        at_stop = self.rail[self._pos][self.sample.fields["action_space"]] == STOP
        if verdict.correct:
            self._passed += 1
            return self._advance(verdict, at_stop)
        if self._tries >= self.verify_iters:
            self._failed = True
            if at_stop or self.on_fail == "end":
                self._finished = True
                return Step(verdict, None, True)
            return self._advance(verdict, at_stop)
        self._messages += [{"role": "assistant", "content": completion},
                           {"role": "user", "content": self.task.failure_turn(verdict)}]
        return Step(verdict, Observation(list(self._messages), self._images), False)

    def _advance(self, verdict: Verdict, at_stop: bool) -> Step:
        if at_stop or self._pos + 1 >= len(self.rail):
            self._finished = True
            return Step(verdict, None, True)
        self._pos += 1
        self._tries = 0
        return Step(verdict, self._observe(), False)

    @property
    def success(self) -> bool:
        return self._finished and not self._failed and self._passed == len(self.rail)

    def metrics(self) -> dict[str, float]:
        correct = sum(v.correct for v in self.verdicts)
        return {"route_step_accuracy": correct / len(self.verdicts) if self.verdicts else 0.0,
                "route_progress": self._passed / len(self.rail)}
