import libcst as cst

from looplint.fix import SAFE, Fix, function_events, insert_after, replace, tree_of
from looplint.model.closures import closure_steps, returns
from looplint.model.events import BACKWARD
from looplint.model.scopes import Function
from looplint.model.describe import call_text
from looplint.rule import Finding, Rule


class ClosureMissingReturn(Rule):
    """## What it does
    Checks for a closure passed to `optimizer.step(closure)` that does not return the loss on every path:
    no `return`, a bare `return`, `return None`, or `return loss.backward()` (which is `None`).

    ## Why is this bad?
    `LBFGS.step(closure)` evaluates `float(closure())` to drive its line search: a closure that returns
    nothing raises `TypeError` on the first step. Other optimizers return the closure's value from
    `step()`, so a closure that returns the loss on some paths and nothing on others hands `None` to
    whoever logs or accumulates the step's result.

    ## Known problems
    For optimizers other than LBFGS a closure that never returns anything is harmless and not reported;
    only a closure that returns the loss on some paths and nothing on others is.

    ## Example
    ```python
    def closure():
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()

    optimizer.step(closure)
    ```

    ## Use instead
    ```python
    def closure():
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    ```

    ## Fix safety
    The fix adds `return loss` where the closure falls off its end (or puts the loss in its final bare
    `return`), `loss` being the tensor the closure backpropagates in its own body. It is safe: a closure's
    value is only read by `step()`. No fix is offered for a lambda, or when the closure backpropagates
    more than one loss or does so inside a branch.

    ## References
    - [PyTorch: Taking an optimization step with a closure](https://pytorch.org/docs/stable/optim.html#optimizer-step-closure)
    """

    code = "LL301"
    name = "closure-missing-return"

    def check(self, model):
        reported = set()
        for cs in closure_steps(model):
            if id(cs.node) in reported:
                continue
            nothing, value = returns(model, cs.closure)
            if not nothing:
                continue
            if cs.re_evaluated:
                message = (f"closure `{cs.name}` passed to `{call_text(cs.step)}` does not return the loss on every "
                           f"path: LBFGS computes `float(closure())` and raises TypeError on None")
            elif value:
                message = (f"closure `{cs.name}` passed to `{call_text(cs.step)}` returns the loss on some paths and "
                           f"nothing on others: `step()` then returns None to its caller")
            else:
                continue
            reported.add(id(cs.node))
            yield Finding(cs.node, message, _fix(model, cs))


def _fix(model, cs):
    """``return loss`` where the closure falls off its end (or in place of its last bare ``return``)."""
    closure = cs.closure
    if not isinstance(closure, Function) or not isinstance(closure.node, cst.FunctionDef):
        return None
    body = closure.node.body
    if not isinstance(body, cst.IndentedBlock) or not body.body:
        return None
    tree = tree_of(model)
    losses = []
    backwards = function_events(model, closure, (BACKWARD,))
    for e in backwards:
        loss = e.call.args[0].value if e.wrapper and e.call is not None and e.call.args else e.target
        st = tree.statement(e.node)
        if isinstance(loss, cst.Name) and st is not None and tree.block_of(st) is body:
            losses.append(loss.value)
    if len(set(losses)) != 1:
        return None
    text = f"return {losses[-1]}"
    last = body.body[-1]
    small = last.body[-1] if isinstance(last, cst.SimpleStatementLine) else None
    if isinstance(small, cst.Return):
        if small.value is not None and not (isinstance(small.value, cst.Name) and small.value.value == "None") \
                and not any(small.value is e.node or small.value is e.call for e in backwards):
            return None
        edit = replace(small, cst.parse_statement(text + "\n").body[0])
    else:
        edit = insert_after(last, text)
    return Fix(f"Return `{losses[-1]}` from the closure", SAFE, (edit,))
