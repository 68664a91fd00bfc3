from looplint.model.closures import closure_steps, returns
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
            yield Finding(cs.node, message)
