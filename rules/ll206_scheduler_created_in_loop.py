from looplint.model.describe import call_text
from looplint.model.restarts import analyse
from looplint.rule import Finding, Rule


class SchedulerCreatedInLoop(Rule):
    """## What it does
    Checks for a learning-rate scheduler constructed on every pass of the epoch or batch loop over an
    optimizer built outside that loop, when the schedule is longer than one pass: stepped once per
    construction, or sized for the whole run (`T_max=epochs * len(loader)`, `num_training_steps`).

    ## Why is this bad?
    A scheduler counts from its construction and starts from the optimizer's initial learning rate. A new
    one every epoch restarts the schedule every epoch: a `StepLR` never decays, a cosine or warmup
    schedule replays its first part forever, and training runs at the wrong learning rate with no error.

    Building a scheduler together with a fresh optimizer (one per fold or per hyper-parameter setting), or
    rebuilding it on purpose every few epochs behind a test, is fine and not reported.

    ## Example
    ```python
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(epochs):
        scheduler = StepLR(optimizer, step_size=10, gamma=0.1)
        train_one_epoch(model, loader, optimizer)
        scheduler.step()
    ```

    ## Use instead
    ```python
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = StepLR(optimizer, step_size=10, gamma=0.1)
    for epoch in range(epochs):
        train_one_epoch(model, loader, optimizer)
        scheduler.step()
    ```

    ## Fix safety
    Moving the constructor above the loop is the fix; it is not applied automatically, because the
    arguments may depend on the loop's variables.

    ## References
    - [How to adjust learning rate](https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate)
    """

    code = "LL206"
    name = "scheduler-created-in-loop"

    def check(self, model):
        for r in analyse(model):
            yield Finding(
                r.construct.node,
                f"`{call_text(r.construct)}` builds a new scheduler over `{r.optimizer.label}` on every pass "
                f"of the loop, so the schedule restarts each time and never reaches its end ({r.why}); build "
                f"it once, before the loop",
            )
