import libcst as cst

from looplint.model import BATCH
from looplint.model.events import BACKWARD, STEP, Event
from looplint.model.scopes import names_in
from looplint.rule import Finding, Rule


class TrainingAfterDataLoop(Rule):
    """## What it does
    Checks for a forward/backward pass placed after a data loop, on variables the loop leaves behind,
    while the loop body itself does no training.

    ## Why is this bad?
    Python loop variables survive the loop. When the training statements are dedented out of the
    `for batch in loader:` loop, the loop only unpacks batches, and the backward pass after it runs once
    on the last batch: every other batch is loaded and ignored.

    ## Example
    ```python
    for x, y in loader:
        x, y = x.to(device), y.to(device)
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
    ```

    ## Use instead
    ```python
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```
    """

    code = "LL109"
    name = "training-after-data-loop"

    def check(self, model):
        for loop in model.builder.loops:
            if loop.kind != BATCH or not isinstance(loop.node, cst.For):
                continue
            if any(isinstance(i, Event) and i.kind in (BACKWARD, STEP) for i in model.loop_items(loop)):
                continue
            leaked = set(loop.target_names) | set(loop.assigned)
            for call in _backward_calls_after(model.statements_after(loop), leaked):
                yield Finding(
                    call,
                    "`backward()` runs after the data loop on the batch variables it leaked: only the last "
                    "batch of each pass is trained on, every other batch is ignored",
                )


def _backward_calls_after(statements, tainted):
    """Backward calls whose loss derives from ``tainted`` names, following simple assignments."""
    tainted = set(tainted)
    for st in statements:
        lines = [st] if isinstance(st, cst.SimpleStatementLine) else []
        if isinstance(st, (cst.With, cst.If)):
            body = st.body.body if isinstance(st.body, cst.IndentedBlock) else []
            lines = [b for b in body if isinstance(b, cst.SimpleStatementLine)]
        for line in lines:
            for small in line.body:
                if isinstance(small, (cst.Assign, cst.AugAssign, cst.AnnAssign)) and small.value is not None:
                    if names_in(small.value) & tainted:
                        targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
                        for t in targets:
                            tainted |= names_in(t)
                    for call in _calls(small.value):
                        if _is_backward(call) and names_in(call.func) & tainted:
                            yield call
                elif isinstance(small, cst.Expr):
                    for call in _calls(small.value):
                        if _is_backward(call) and names_in(call.func) & tainted:
                            yield call


def _is_backward(call: cst.Call) -> bool:
    return isinstance(call.func, cst.Attribute) and call.func.attr.value == "backward"


def _calls(expr):
    found = []

    class V(cst.CSTVisitor):
        def visit_Call(self, n: cst.Call) -> None:
            found.append(n)

    if expr is not None:
        expr.visit(V())
    return found
