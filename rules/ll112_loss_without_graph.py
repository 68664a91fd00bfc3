from looplint.model.describe import call_text
from looplint.model.graphs import analyse
from looplint.rule import Finding, Rule


class LossWithoutGraph(Rule):
    """## What it does
    Checks for a loss that has no autograd history, because it was computed under `torch.no_grad()` /
    `torch.inference_mode()` or from `.detach()`ed, `.item()` or `torch.tensor(...)` values, and is then
    forced to require gradients (`loss.requires_grad = True`, `loss.requires_grad_()`,
    `torch.tensor(value, requires_grad=True)`) so that `loss.backward()` runs: reported at the forcing.
    Also for a loss that nothing forces whose graph was cut: the model's outputs computed under
    `torch.no_grad()` / `torch.inference_mode()`, by a helper decorated with them, or taken through
    `.detach()` / `.data`: reported at the `backward()` (also `scaler.scale(loss).backward()`,
    `accelerator.backward(loss)`).

    ## Why is this bad?
    `backward()` on a tensor without history raises *element 0 of tensors does not require grad and does
    not have a grad_fn*. Setting `requires_grad` silences the error but does not reconnect the loss to the
    model: the loss becomes a leaf of its own, the backward pass reaches no parameter, every `.grad` stays
    `None` (or zero) and the optimizer steps change nothing. Training runs, logs a loss, and the model
    never learns.

    A no-grad block that computes only a target, a teacher's output or a metric, or a `.detach()` on one
    term while another term keeps the graph, is fine and not reported.

    ## Known problems
    Only losses whose every definition looplint can follow are judged (through the functions of the
    module that compute them, and to the caller when every call site hands over the same loss); a loss
    built by a helper it cannot see, or handed in by callers it cannot read, keeps the rule silent.

    ## Example
    ```python
    with torch.no_grad():
        outputs = model(inputs)
    loss = criterion(outputs, targets)
    loss.requires_grad = True
    loss.backward()
    optimizer.step()
    ```

    ## Use instead
    ```python
    outputs = model(inputs)
    loss = criterion(outputs, targets)
    loss.backward()
    optimizer.step()
    ```

    ## References
    - [Autograd mechanics: locally disabling gradient computation](https://pytorch.org/docs/stable/notes/autograd.html#locally-disabling-gradient-computation)
    """

    code = "LL112"
    name = "loss-without-graph"

    def check(self, model):
        for found in analyse(model):
            if found.cut:
                yield Finding(
                    found.backward.node,
                    f"`{found.loss}` has no autograd history ({found.why}): `{call_text(found.backward)}` "
                    f"cannot reach the model's parameters (it raises *element 0 of tensors does not require "
                    f"grad*) and the optimizer steps change nothing; compute the loss from the model's outputs "
                    f"with gradients enabled",
                )
            for node in found.forcings:
                yield Finding(
                    node,
                    f"`{found.loss}` has no autograd history ({found.why}): forcing `requires_grad` lets "
                    f"`{call_text(found.backward)}` run, but it reaches no parameter and the optimizer steps "
                    f"change nothing; compute the loss from the model's outputs with gradients enabled",
                )
