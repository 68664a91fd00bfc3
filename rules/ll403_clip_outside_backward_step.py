from looplint.fix import SAFE, Fix, code_of, contains, function_events, move_before, tree_of
from looplint.model.describe import call_text
from looplint.model.events import BACKWARD, STEP, ZERO
from looplint.model.partial_clips import analyse as partial_clips
from looplint.rule import Finding, Rule


class ClipOutsideBackwardStep(Rule):
    """## What it does
    Checks for gradient clipping that does not sit between `backward()` and the optimizer step: before
    the backward pass (after `zero_grad()`) or after the step, or on micro-batches of gradient
    accumulation whose step is skipped (the next micro-batch's backward follows the clip).

    ## Why is this bad?
    Clipping rescales the gradients currently stored in `.grad`. Before `backward()` they are zero (or
    the previous batch's, about to be cleared); after `step()` they have already been applied and are
    cleared before the next backward: the update is never clipped, and exploding gradients go through
    unchecked while the code looks protected. On a micro-batch that does not step, the clip rescales a
    partial sum and the following backward passes add unclipped gradients to it: the update is not the
    clipped sum of the window's gradients (the earlier micro-batches are shrunk, the later ones not), and
    it is not clipped at all when no clip follows the window's last backward.

    ## Known problems
    A backward pass or step hidden in a call looplint cannot see keeps the rule silent.

    ## Example
    ```python
    optimizer.zero_grad()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    loss.backward()
    optimizer.step()
    ```

    ## Use instead
    ```python
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    ```

    ## Fix safety
    The fix moves the clip to just before the optimizer step of its block, after the backward pass there.
    It is safe: the step then applies the clipped gradients, as the clip meant. No fix is offered when the
    step or the backward runs in another block or function.
    """

    code = "LL403"
    name = "clip-outside-backward-step"

    def check(self, model):
        settled_clips = model.useless_clips
        for clip, settled in settled_clips.items():
            by = sorted(settled, key=lambda e: model.source(e.node))[0]
            where = ("after `{}` cleared the gradients and before the next `backward()`" if by.kind == ZERO
                     else "after `{}` already applied the gradients").format(call_text(by))
            yield Finding(
                clip.node,
                f"`{call_text(clip)}` runs {where}: no step ever applies the clipped gradients; clip between "
                f"`backward()` and the step",
                _fix(model, clip),
            )
        for clip, backwards in partial_clips(model).items():
            if clip in settled_clips:
                continue
            again = sorted(backwards, key=lambda e: model.source(e.node))[0]
            yield Finding(
                clip.node,
                f"`{call_text(clip)}` runs on micro-batches whose step is skipped: `{call_text(again)}` adds "
                f"unclipped gradients to the clipped partial sum before the step, so the update is not the "
                f"clipped sum of the window's gradients; clip only when the optimizer steps",
            )


def _fix(model, clip):
    """Moves the clip right before the step of its block (which a backward of the block precedes)."""
    tree = tree_of(model)
    stmt = tree.sole_call_statement(clip.call) if clip.call is not None else None
    if stmt is None:
        return None
    fn = model.function_of(clip)
    siblings = list(tree.siblings(stmt))

    def holding(kind):
        nodes = [e.node for e in function_events(model, fn, (kind,))]
        return [i for i, st in enumerate(siblings) if st is not stmt and any(contains(tree, st, n) for n in nodes)]

    steps, backwards = holding(STEP), holding(BACKWARD)
    if len(steps) != 1 or not any(b < steps[0] for b in backwards):
        return None
    step = siblings[steps[0]]
    return Fix(f"Move `{code_of(clip.call)}` before the optimizer step", SAFE, move_before(stmt, step))
