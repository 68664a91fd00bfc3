import libcst as cst

from looplint.fix import SAFE, UNSAFE, Fix, code_of, function_events, insert_before, optimizer_expression, tree_of
from looplint.model import STALE, USED
from looplint.model.describe import call_text
from looplint.model.events import BACKWARD, CALL, GRAD_CLEAR, STEP, ZERO
from looplint.model.interp import items_below
from looplint.model.scopes import names_in
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
    a GAN's generator is zeroed after the discriminator's update). It is safe when that backward and the
    step are in the same block, unsafe when the step sits in a branch of its own (a human should check
    that no accumulation was meant). No fix is offered when the backward runs in another function or
    outside the loop that runs the step.

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
            if any(s.gs in (STALE, USED) and not s.doubt for s in states):
                yield Finding(
                    event.node,
                    f"`{call_text(event)}` applies gradients accumulated since before its previous step: "
                    f"no `{role.label}.zero_grad()` runs between the two steps, so old gradients are applied again",
                    _fix(model, event),
                )


ORDERING_KINDS = (STEP, ZERO, GRAD_CLEAR, BACKWARD, CALL)


def _fix(model, step):
    """``opt.zero_grad()`` before the forward pass that feeds the iteration's first backward."""
    tree = tree_of(model)
    opt = optimizer_expression(model, step)
    step_stmt = tree.statement(step.node)
    container = tree.enclosing(step.node, (cst.For, cst.While, cst.FunctionDef))
    if opt is None or step_stmt is None or container is None:
        return None
    events = [e for e in function_events(model, model.function_of(step), ORDERING_KINDS)
              if any(a is container for a in tree.ancestors(e.node)) and tree.precedes(e.node, step.node)
              and (e.kind != CALL or _runs_backward(model, e))]
    # the backward passes since the last step of another optimizer before this one
    start = 0
    for i, e in enumerate(events):
        if e.kind == STEP:
            start = i + 1
    backwards = [e for e in events[start:] if e.kind in (BACKWARD, CALL)]
    if not backwards:
        return None
    anchor = tree.statement(backwards[0].node)
    if anchor is None:
        return None
    anchor = _first_feeding(tree, anchor, {id(e.node) for e in events})
    safe = tree.block_of(anchor) is tree.block_of(step_stmt)
    text = f"{code_of(opt)}.zero_grad()"
    return Fix(f"Insert `{text}` before the forward pass", SAFE if safe else UNSAFE, (insert_before(anchor, text),))


def _runs_backward(model, call) -> bool:
    """Whether a call of a same-module function runs a backward pass in its own body."""
    return call.callee is not None and any(
        getattr(i, "kind", None) == BACKWARD for i in items_below(model.builder.body(call.callee)))


def _first_feeding(tree, backward_stmt, event_nodes):
    """The first of the assignments right before ``backward_stmt`` in its block that compute what it
    backpropagates (``out = model(x)``, ``loss = criterion(out, y)``)."""
    siblings = list(tree.siblings(backward_stmt))
    needed = names_in(backward_stmt)
    first = backward_stmt
    for st in reversed(siblings[: siblings.index(backward_stmt)]):
        if not isinstance(st, cst.SimpleStatementLine) or not all(isinstance(s, (cst.Assign, cst.AnnAssign)) for s in st.body):
            break
        if any(id(n) in event_nodes for n in _calls(st)):
            break
        targets = set()
        for s in st.body:
            for t in ([t.target for t in s.targets] if isinstance(s, cst.Assign) else [s.target]):
                targets |= names_in(t)
        if not targets & needed:
            break
        for s in st.body:
            if s.value is not None:
                needed |= names_in(s.value)
        first = st
    return first


def _calls(node):
    found = []

    class V(cst.CSTVisitor):
        def visit_Call(self, n: cst.Call) -> None:
            found.append(n)

    node.visit(V())
    return found
