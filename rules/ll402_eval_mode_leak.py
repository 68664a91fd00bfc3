from looplint.model.describe import call_text
from looplint.rule import Finding, Rule


class EvalModeLeak(Rule):
    """## What it does
    Checks for `model.eval()` in a training loop (often inside a validation helper called from it) with no
    `model.train()` before the next training pass.

    ## Why is this bad?
    In eval mode, dropout is switched off and batch normalisation uses (and no longer updates) its running
    statistics. Training then continues on a different network than intended: regularisation disappears,
    BatchNorm statistics freeze at their values from the evaluation, and the model often trains worse,
    silently. The classic shape is a `validate()` that calls `model.eval()` and returns, called from the
    middle of an epoch whose `model.train()` ran only once, at its start.

    ## Known problems
    Deliberate eval-mode training (a linear probe that keeps BatchNorm frozen) looks the same; mark it
    with `# noqa: LL402`. `eval()` on other objects (an EMA copy, a teacher) is not reported.

    ## Example
    ```python
    for epoch in range(epochs):
        model.train()
        for i, (x, y) in enumerate(loader):
            if i % 100 == 0:
                validate(model)  # calls model.eval()
            loss = criterion(model(x), y)
            ...
    ```

    ## Use instead
    ```python
    for epoch in range(epochs):
        for i, (x, y) in enumerate(loader):
            if i % 100 == 0:
                validate(model)
            model.train()
            loss = criterion(model(x), y)
            ...
    ```
    """

    code = "LL402"
    name = "eval-mode-leak"

    def check(self, model):
        for leak in model.eval_leaks:
            where = (f"`{leak.helper.name}()` returns with `{leak.module}` still in eval mode"
                     if leak.helper is not None else
                     f"the next iteration trains `{leak.module}` in eval mode")
            yield Finding(
                leak.eval_call.node,
                f"`{call_text(leak.eval_call)}` is not undone before the training step `{call_text(leak.backward)}`: {where} "
                f"(dropout off, BatchNorm statistics frozen); call `{leak.module}.train()` before training",
            )
