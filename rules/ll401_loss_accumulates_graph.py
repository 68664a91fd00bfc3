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
            )
