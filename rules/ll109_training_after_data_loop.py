import libcst as cst

from looplint.model import BATCH
from looplint.model.events import BACKWARD, STEP, Event, Jump
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

    ## Fix safety
    No fix is offered: moving the training code into the loop re-indents several statements and changes what they see.
    """

    code = "LL109"
    name = "training-after-data-loop"

    def check(self, model):
        for loop in model.builder.loops:
            if loop.kind != BATCH or not isinstance(loop.node, cst.For):
                continue
            if any(isinstance(i, Event) and i.kind in (BACKWARD, STEP) for i in model.loop_items(loop)):
                continue
            if any(isinstance(i, Jump) and i.kind == "break" for i in loop.body.items):
                continue  # ``for x in loader: ...; break`` takes one batch on purpose
            for call in model.backward_on_leaked_names(loop):
                yield Finding(
                    call,
                    "`backward()` runs after the data loop on the batch variables it leaked: only the last "
                    "batch of each pass is trained on, every other batch is ignored",
                )
