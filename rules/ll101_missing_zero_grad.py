from looplint.fix import (
    SAFE, Fix, code_of, contains, forward_pass_start, function_events, insert_after, insert_before, optimizer_expression, tree_of,
)
from looplint.model import STALE, USED
from looplint.model.describe import call_text
from looplint.model.events import GRAD_CLEAR, STEP, ZERO
from looplint.rule import Finding, Rule


class MissingZeroGrad(Rule):
    """## What it does
    Checks for an optimizer step that consumes gradients left over from before its previous step,
    because no `zero_grad()` runs between the two steps on some path through the loop.

    ## Why is this bad?
    `backward()` adds into `.grad`; it never overwrites it. Without `zero_grad()` every step applies the
    sum of all gradients since the last zeroing: the second step re-applies the first batch's gradient,
    the hundredth step applies a hundred batches at once. Training runs without an error, but the
    effective learning rate grows with the step count and the loss usually diverges or stalls.

    The analysis follows each optimizer separately around the loop, through `if`/`else` branches,
    nested loops and same-module helper functions, so gradient accumulation
    (`if (i + 1) % k == 0: step(); zero_grad()`) and GANs whose optimizers are zeroed before their own
    backward pass are not reported.

    ## Known problems
    A call looplint cannot see into that can reach the optimizer may clear its gradients, and the step
    after it is not reported: a helper handed the optimizer (or `self`, which holds it), and a method the
    class inherits from code looplint cannot read (a base class of a module it cannot find, or of another
    package), however its result is used (`loss = self.standard_loss(x, y)`).

    ## Example
    ```python
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```

    ## Use instead
    ```python
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```

    ## Fix safety
    The fix inserts `optimizer.zero_grad()` where the iteration's gradients start: before the first
    forward pass that feeds the first backward the step consumes (after the steps of other optimizers, so
    a GAN's generator is zeroed after the discriminator's update). When the step runs under a condition
    of its own (`if (i + 1) % k == 0:`, gradient accumulation), it inserts `optimizer.zero_grad()` right
    after the step instead, so the micro-batches of a window still add up. It is safe: gradients are
    only ever cleared after a step applied them or before a fresh pass. No fix is offered when the
    backward runs in another function or outside the loop that runs the step.

    ## References
    - [PyTorch: `Optimizer.zero_grad`](https://pytorch.org/docs/stable/generated/torch.optim.Optimizer.zero_grad.html)
    - [PyTorch FAQ: zeroing out gradients](https://pytorch.org/tutorials/recipes/recipes/zeroing_out_gradients.html)
    """

    code = "LL101"
    name = "missing-zero-grad"

    def check(self, model):
        for event, role, states in model.optimizer_events(STEP):
            if event.closure is not None:
                continue  # the closure runs the backward: its missing zero_grad is LL302's finding
            if any(s.gs in (STALE, USED) and not s.doubt and not s.unseen for s in states):
                written = optimizer_expression(model, event)  # as the step spells it (``D.optim``, not ``self.optim``)
                name = " ".join(code_of(written).split()) if written is not None else role.label
                yield Finding(
                    event.node,
                    f"`{call_text(event)}` applies gradients accumulated since before its previous step: "
                    f"no `{name}.zero_grad()` runs between the two steps, so old gradients are applied again",
                    _fix(model, event),
                )


def _fix(model, step):
    """``opt.zero_grad()`` before the forward pass that feeds the iteration's first backward; after the step
    when the step runs under a condition of its own (gradient accumulation: the zeroing belongs to the
    update, not to every micro-batch)."""
    opt = optimizer_expression(model, step)
    start = forward_pass_start(model, step)
    if opt is None or start is None:
        return None
    anchor, same_block = start
    text = f"{code_of(opt)}.zero_grad()"
    if same_block:
        return Fix(f"Insert `{text}` before the forward pass", SAFE, (insert_before(anchor, text),))
    tree = tree_of(model)
    line = tree.sole_call_statement(step.call) if step.call is not None else None
    if line is None:
        return None
    siblings = list(tree.siblings(line))
    after = siblings[siblings.index(line) + 1:]
    zeros = [e.node for e in function_events(model, model.function_of(step), (ZERO, GRAD_CLEAR))]
    if after and any(contains(tree, after[0], n) for n in zeros):
        return None  # zeroed right after the step already: the stale gradients come from elsewhere
    return Fix(f"Insert `{text}` after the step", SAFE, (insert_after(line, text),))
