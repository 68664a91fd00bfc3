import libcst as cst

from looplint.fix import SAFE, Fix, code_of, replace
from looplint.rule import Finding, Rule


class LossAccumulatesGraph(Rule):
    """## What it does
    Checks for a running total that adds the loss tensor itself (`total_loss += loss`) across loop
    iterations, where `loss` is the tensor the loop backpropagates.

    ## Why is this bad?
    `loss` carries its autograd graph. Adding it to a total that lives across iterations makes the total a
    tensor whose history links every iteration's graph, so none of them can be freed until the total
    is: memory grows with every batch (the first question of the PyTorch FAQ), and the total is a
    graph-attached tensor where a number was meant.

    ## Known problems
    Building one loss from several terms inside an iteration, a total reset in the branch that steps, and
    totals that are backpropagated themselves are not reported.

    ## Example
    ```python
    running_loss = 0.0
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        running_loss += loss
    ```

    ## Use instead
    ```python
    running_loss = 0.0
    for x, y in loader:
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
    ```

    ## Fix safety
    The fix adds `.detach()` to the value added (`total += loss.detach()`): the sum stays a tensor, so code
    that reads it (`total.item()`, `total / n`) keeps working, and no graph is kept. It is safe: nothing
    backpropagates through a running total.

    ## References
    - [PyTorch FAQ: my model reports "cuda runtime error(2): out of memory"](https://pytorch.org/docs/stable/notes/faq.html)
    """

    code = "LL401"
    name = "loss-accumulates-graph"

    def check(self, model):
        for acc in model.graph_accumulations:
            yield Finding(
                acc.node,
                f"`{acc.target}` adds `{acc.value}` with its autograd graph on every iteration: the graphs of all "
                f"iterations stay alive; add `{acc.value}.item()` (or `{acc.value}.detach()`)",
                _fix(acc.node),
            )


def _fix(node: cst.AugAssign) -> Fix:
    """``total += loss.detach()``: the sum stays a tensor (code that reads it keeps working), without graphs."""
    value = node.value
    simple = isinstance(value, (cst.Name, cst.Attribute, cst.Call, cst.Subscript))
    text = code_of(value) if simple else f"({code_of(value)})"
    return Fix(f"Add `{text}.detach()`", SAFE, (replace(value, cst.parse_expression(f"{text}.detach()")),))
