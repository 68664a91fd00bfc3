import libcst as cst

from looplint.fix import (
    INSERT_BEFORE, REMOVE, UNSAFE, Edit, Fix, code_of, contains, forward_pass_start, function_events, optimizer_expression,
    replace, statement, tree_of,
)
from looplint.model.closures import RE_EVALUATING, scaler_closure_steps
from looplint.model.describe import call_text
from looplint.model.events import BACKWARD, STEP, ZERO
from looplint.model.scopes import keyword_arg, names_in, positional_args
from looplint.rule import Finding, Rule


class LbfgsStepWithoutClosure(Rule):
    """## What it does
    Checks for `LBFGS.step()` called without a closure, and for a closure handed to
    `GradScaler.step(optimizer, closure)`.

    ## Why is this bad?
    LBFGS needs to re-evaluate the loss during its line search, so its `step()` requires a closure:
    called like SGD's `step()` it raises `TypeError` on the first update. `GradScaler.step()` does not
    support closures: with `closure=` it raises `RuntimeError`, and a closure passed positionally reaches
    the optimizer after the gradients were unscaled, so its re-evaluated gradients are applied scaled.

    ## Example
    ```python
    optimizer = torch.optim.LBFGS(model.parameters())
    for x, y in loader:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
    ```

    ## Use instead
    ```python
    optimizer = torch.optim.LBFGS(model.parameters())
    for x, y in loader:
        def closure():
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            return loss

        optimizer.step(closure)
    ```

    ## Fix safety
    For `LBFGS.step()` without a closure, the fix wraps the statements of the iteration that compute the
    loss and run its backward (from the `zero_grad()` before them) into `def closure(): ...; return loss`
    and passes it: `optimizer.step(closure)`. It is unsafe: LBFGS calls the closure several times per
    step, so anything else those statements do (logging, counters) runs several times too. No fix is
    offered when a name they assign is read after the step, when they are not simple statements of the
    step's block, or for closures handed to `GradScaler.step`.

    ## References
    - [PyTorch: `LBFGS.step`](https://pytorch.org/docs/stable/generated/torch.optim.LBFGS.html)
    - [PyTorch AMP examples: closures are not supported with GradScaler](https://pytorch.org/docs/stable/notes/amp_examples.html)
    """

    code = "LL304"
    name = "lbfgs-step-without-closure"

    def check(self, model):
        seen = set()
        for event, role, _states in model.optimizer_events(STEP):
            if event in seen or event.call is None or event.closure is not None or event.closure_unknown:
                continue
            if role.evidence != "constructor" or role.cls_name not in RE_EVALUATING:
                continue
            if keyword_arg(event.call, "closure") is not None or len(positional_args(event.call)) > 1:
                continue
            if event.call.args and (event.target is None or model.roles.resolve(event.target, next(iter(model.facts.frames[event]))) is role):
                continue  # some argument we cannot read
            seen.add(event)
            written = optimizer_expression(model, event)
            yield Finding(
                event.node,
                f"`{call_text(event)}` steps LBFGS `{' '.join(code_of(written).split()) if written is not None else role.label}` without a closure: LBFGS re-evaluates the loss "
                f"through the closure and raises TypeError without one",
                _fix(model, event),
            )
        for event in scaler_closure_steps(model):
            if event in seen:
                continue
            seen.add(event)
            yield Finding(
                event.node,
                f"`{call_text(event)}` hands a closure to `GradScaler.step()`, which does not support closures: "
                f"it raises RuntimeError for `closure=`, and a closure passed on to the optimizer recomputes "
                f"gradients after they were unscaled",
            )


def _fix(model, step):
    """``def closure(): <forward, backward>; return loss`` and ``optimizer.step(closure)``."""
    tree = tree_of(model)
    start = forward_pass_start(model, step)
    stmt = tree.statement(step.node)
    if start is None or not start[1] or stmt is None or step.call.args:
        return None
    fn = model.function_of(step)
    siblings = list(tree.siblings(stmt))
    first = siblings.index(start[0])
    zeros = [e.node for e in function_events(model, fn, (ZERO,))]
    if first > 0 and any(contains(tree, siblings[first - 1], n) for n in zeros):
        first -= 1
    body = siblings[first: siblings.index(stmt)]
    backwards = [e for e in function_events(model, fn, (BACKWARD,)) if any(contains(tree, st, e.node) for st in body)]
    if not body or not backwards or not all(isinstance(st, cst.SimpleStatementLine) for st in body):
        return None
    last = backwards[-1]
    assigned = set()
    for st in body:
        for small in st.body:
            for t in ([t.target for t in small.targets] if isinstance(small, cst.Assign) else
                      [small.target] if isinstance(small, (cst.AnnAssign, cst.AugAssign)) else []):
                assigned |= names_in(t)
    if assigned & _names_outside(fn.node, body):
        return None  # the closure would hide a name the function reads elsewhere
    statements = list(body)
    if isinstance(last.target, cst.Name) and not last.wrapper:
        loss = last.target.value
    else:
        line = tree.sole_call_statement(last.call)
        if line is None or last.wrapper or last.call.args or last.target is None or "loss" in assigned:
            return None
        loss = "loss"
        i = statements.index(line)
        statements[i:i + 1] = [line.with_changes(body=[cst.Assign([cst.AssignTarget(cst.Name(loss))], last.target)]),
                               statement(f"{loss}.backward()")]
    closure = cst.FunctionDef(cst.Name("closure"), cst.Parameters(),
                              cst.IndentedBlock([*statements, statement(f"return {loss}")]))
    edits = [Edit(REMOVE, st) for st in body]
    edits.append(Edit(INSERT_BEFORE, stmt, (closure,)))
    edits.append(replace(step.call, step.call.with_changes(args=[cst.Arg(cst.Name("closure"))])))
    return Fix("Wrap the forward and backward pass in a closure passed to `step()`", UNSAFE, tuple(edits))


def _names_outside(function: cst.CSTNode, statements) -> set:
    """The names read or bound in ``function`` outside ``statements`` (and outside nested functions)."""
    from looplint.model.walk import descendants

    skip = {id(st) for st in statements}
    root = function.body if isinstance(function, cst.FunctionDef) else function
    return {n.value for n in descendants(root, prune=lambda n: type(n) is cst.SimpleStatementLine and id(n) in skip)
            if type(n) is cst.Name}
