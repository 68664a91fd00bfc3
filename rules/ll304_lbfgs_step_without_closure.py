from looplint.model.closures import RE_EVALUATING, scaler_closure_steps
from looplint.model.describe import call_text
from looplint.model.events import STEP
from looplint.model.scopes import keyword_arg, positional_args
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
            yield Finding(
                event.node,
                f"`{call_text(event)}` steps LBFGS `{role.label}` without a closure: LBFGS re-evaluates the loss "
                f"through the closure and raises TypeError without one",
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
