from looplint.model.params import analyse
from looplint.rule import Finding, Rule


class OptimizerOverFrozenParameters(Rule):
    """## What it does
    Checks for an optimizer whose parameters are all frozen (`requires_grad = False`) when it trains: a
    freezing loop after the optimizer was built over the same modules (`opt = Adam(model.head.parameters())`,
    then every parameter of `model` frozen and only the backbone re-enabled), or an optimizer built only
    over parameters frozen before.

    ## Why is this bad?
    An optimizer holds the parameters it was given when it was built; `requires_grad` decides at every
    backward pass which of them receive a gradient. When every parameter it holds is frozen, no gradient
    ever reaches them, every `step()` skips them, and the model the loop "trains" never changes (while
    the unfrozen parameters receive gradients that no optimizer applies).

    ## Known problems
    Only straight-line code is read: a freezing loop under a test (`if "head" not in name:`), parameters
    selected by a filter, or an optimizer built by a helper keep the rule silent.

    ## Example
    ```python
    optimizer = torch.optim.Adam(model.head.parameters(), lr=1e-3)
    for p in model.parameters():
        p.requires_grad = False
    for p in model.backbone.parameters():
        p.requires_grad = True
    train(model, optimizer)
    ```

    ## Use instead
    ```python
    for p in model.backbone.parameters():
        p.requires_grad = False
    optimizer = torch.optim.Adam(model.head.parameters(), lr=1e-3)
    train(model, optimizer)
    ```
    """

    code = "LL110"
    name = "optimizer-over-frozen-parameters"

    def check(self, model):
        for f in analyse(model).frozen:
            held = ", ".join(f"`{p}`" for p in f.holds)
            if f.freeze is not None:
                yield Finding(
                    f.freeze,
                    f"this freezes every parameter of {held}, all that `{f.optimizer.label}` holds, before it "
                    f"trains: no parameter it steps receives a gradient and the model never changes",
                )
            else:
                yield Finding(
                    f.ctor,
                    f"`{f.optimizer.label}` is built only over parameters of {held}, which are frozen "
                    f"(`requires_grad = False`) before it trains: its steps never change anything",
                )
