import libcst as cst

from looplint.fix import SAFE, Fix, code_of, insert_before, optimizer_expression
from looplint.model.closures import backward_runs, closure_steps, runs, unseen_effects, zeroes
from looplint.model.describe import call_text
from looplint.model.scopes import Function
from looplint.rule import Finding, Rule


class ClosureMissingZeroGrad(Rule):
    """## What it does
    Checks for a closure passed to an optimizer that re-evaluates it (LBFGS) which calls `backward()` but
    never clears the gradients.

    ## Why is this bad?
    LBFGS calls the closure several times per `step()` (up to `max_iter` plus line-search evaluations)
    and reads the parameters' `.grad` after each call. Without `zero_grad()` inside the closure every
    evaluation adds its gradient to the previous ones, so LBFGS sees the running sum of gradients at
    different points instead of the gradient at the current one: its curvature estimates and line
    search are wrong and training stalls or diverges. A `zero_grad()` before `step()` clears only the
    first evaluation.

    ## Known problems
    Only optimizers known to be LBFGS are checked: a closure handed to an optimizer built in another
    module is not reported. Zeroing under a condition (a first-evaluation flag) counts as zeroing.

    ## Example
    ```python
    def closure():
        loss = criterion(model(x), y)
        loss.backward()
        return loss

    optimizer.zero_grad()
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
    The fix inserts `optimizer.zero_grad()` as the closure's first statement (after a docstring), for a
    closure defined in the function that steps. It is safe: every evaluation then starts from clean
    gradients, which is what the optimizer assumes. No fix is offered for a lambda or a closure defined
    elsewhere.

    ## References
    - [PyTorch: `LBFGS`](https://pytorch.org/docs/stable/generated/torch.optim.LBFGS.html)
    """

    code = "LL302"
    name = "closure-missing-zero-grad"

    def check(self, model):
        reported = set()
        for cs in closure_steps(model):
            if not cs.re_evaluated or id(cs.node) in reported:
                continue
            events = runs(model, cs.closure)
            if not backward_runs(events) or zeroes(events) or unseen_effects(model, cs)[1]:
                continue
            reported.add(id(cs.node))
            yield Finding(
                cs.node,
                f"closure `{cs.name}` runs `backward()` without `zero_grad()`, and `{call_text(cs.step)}` "
                f"evaluates it several times per step: each evaluation adds to the previous gradients",
                _fix(model, cs),
            )


def _fix(model, cs):
    """``optimizer.zero_grad()`` at the top of the closure."""
    closure, opt = cs.closure, optimizer_expression(model, cs.step)
    if (opt is None or not isinstance(closure, Function) or not isinstance(closure.node, cst.FunctionDef)
            or closure.parent is not model.function_of(cs.step) or not isinstance(closure.node.body, cst.IndentedBlock)):
        return None
    body = closure.node.body.body
    first = body[0]
    if (len(body) > 1 and isinstance(first, cst.SimpleStatementLine) and isinstance(first.body[0], cst.Expr)
            and isinstance(first.body[0].value, (cst.SimpleString, cst.ConcatenatedString))):
        first = body[1]  # after the docstring
    text = f"{code_of(opt)}.zero_grad()"
    return Fix(f"Insert `{text}` at the top of the closure", SAFE, (insert_before(first, text),))
