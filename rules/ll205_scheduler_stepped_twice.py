from looplint.model.describe import call_text, target_text
from looplint.model.schedulers import gated_within, scheduler_steps
from looplint.rule import Finding, Rule


class SchedulerSteppedTwice(Rule):
    """## What it does
    Checks for a learning-rate scheduler stepped twice with no optimizer step in between: stepped both in
    the batch loop and again once per epoch, or twice in the same iteration. A scheduler the batch loop
    steps once every `k` iterations (`if (i + 1) % k == 0:`) and the epoch steps again is reported too: its
    schedule advances in both places.

    ## Why is this bad?
    Every `scheduler.step()` advances the schedule. A scheduler stepped per batch *and* per epoch runs
    ahead of its own plan (an epoch-sized schedule finishes early, a per-step schedule gains one extra step
    per epoch); stepped twice per update it runs at double speed. Both are usually a copy that was moved
    into the loop while the original stayed behind.

    ## Known problems
    When both calls sit under conditions (for example a configuration flag choosing per-batch or
    per-epoch stepping) looplint cannot tell whether both can run, and stays silent.

    ## Example
    ```python
    for epoch in range(epochs):
        for x, y in loader:
            ...
            optimizer.step()
            scheduler.step()
        scheduler.step()
    ```

    ## Use instead
    ```python
    for epoch in range(epochs):
        for x, y in loader:
            ...
            optimizer.step()
            scheduler.step()
    ```

    ## Fix safety
    No fix is offered: which of the two steps is meant cannot be read from the code.
    """

    code = "LL205"
    name = "scheduler-stepped-twice"

    def check(self, model):
        facts = model.facts
        for event, role, kind in scheduler_steps(model):
            earlier = facts.sched_twice.get(event)
            windowed = facts.sched_after_window.get(event)
            if not (earlier or windowed) or not kind.known or getattr(role, "alternatives", ()):
                continue
            if event.call is None or len(event.call.args) > 1:
                continue
            if _conditional(facts, event) and all(_conditional(facts, e) for e in (earlier or windowed)):
                continue
            if earlier:
                yield Finding(
                    event.node,
                    f"`{call_text(event)}` steps `{target_text(event, role.label)}` a second time with no optimizer step since its "
                    f"previous `step()`: the schedule advances twice per update (or once more per epoch) and "
                    f"runs ahead of its plan",
                )
                continue
            test = _window_test(model, windowed)
            yield Finding(
                event.node,
                f"`{call_text(event)}` steps `{target_text(event, role.label)}` after the loop, which also steps it "
                f"{f'under `if {test}:`' if test else 'once every few iterations'}: the schedule advances in both "
                f"places and runs ahead of its plan",
            )


def _window_test(model, steps) -> str:
    """The periodic test (``(i + 1) % k == 0``) under which the loop steps the scheduler, as written."""
    for step in steps:
        for _stack, conds in model.facts.contexts.get(step, ()):
            for key, _value, _depth in conds:
                if key is not None and not key.startswith("mod:") and model.periodic_test(key) is not None:
                    return key
    return ""


def _conditional(facts, event) -> bool:
    """Whether some context runs the event under an ``if`` inside a loop (a scheduler presence test aside)."""
    return any(gated_within(conds, 1) for _stack, conds in facts.contexts.get(event, ()))
