from looplint.fix import SAFE, Fix, forward_pass_start, insert_before
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

    An optimizer over one sub-module alone (`SGD(model.head.parameters())`) that is set back with
    `model.head.train()` after `model.eval()` trains every parameter it updates in train mode: the rest of
    the model stays in eval mode on purpose (a frozen backbone), and that is not reported.

    An `eval()` under a test that holds only on the last batch (`if i == len(loader) - 1:`, also through
    `list(enumerate(...))`, `tqdm` and `range(len(...))`) is followed by no batch of that loop: with
    `model.train()` at the top of the next epoch it is not reported.

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

    ## Fix safety
    The fix inserts `model.train()` (the module as the `eval()` call names it) right before the forward
    pass of the training step (the forward pass of its backward). It is safe: training code that runs in train mode is what
    the loop meant (deliberate eval-mode training carries a `# noqa`). No fix is offered when the module's
    name in the `eval()` call does not hold where the training step runs (a helper's parameter).
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
                _fix(model, leak),
            )


def _fix(model, leak):
    """``model.train()`` before the forward pass of the training step."""
    fn, where = model.function_of(leak.backward), model.function_of(leak.eval_call)
    if fn is None or where is None:
        return None
    same_object = where is fn or (leak.module.split(".")[0] == "self" and where.cls is not None and where.cls is fn.cls)
    start = forward_pass_start(model, leak.backward)
    if not same_object or start is None:
        return None
    text = f"{leak.module}.train()"
    return Fix(f"Insert `{text}` before the training step", SAFE, (insert_before(start[0], text),))
