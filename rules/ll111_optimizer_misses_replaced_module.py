from looplint.model.params import analyse
from looplint.rule import Finding, Rule


class OptimizerMissesReplacedModule(Rule):
    """## What it does
    Checks for a submodule replaced or added (`model.fc = nn.Linear(...)`, `setattr`, `add_module`) after
    an optimizer was built over the parent module's parameters, before the training loop.

    ## Why is this bad?
    The optimizer took the list of parameters when it was built: it holds the old layer's parameters, not
    the new ones. The new layer receives gradients in every backward pass but no step ever applies them,
    so it stays at its random initialisation (typically the classifier head of a fine-tuned model), while
    the old layer, no longer part of the model, is stepped with no gradients.

    ## Known problems
    Only straight-line code is read: a replacement in a helper or under a test keeps the rule silent.

    ## Example
    ```python
    model = torchvision.models.resnet18()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    model.fc = nn.Linear(model.fc.in_features, 10)
    train(model, optimizer)
    ```

    ## Use instead
    ```python
    model = torchvision.models.resnet18()
    model.fc = nn.Linear(model.fc.in_features, 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    train(model, optimizer)
    ```

    ## Fix safety
    Building the optimizer after the replacement is the fix; it is not applied automatically (the
    optimizer's arguments may depend on code between the two).
    """

    code = "LL111"
    name = "optimizer-misses-replaced-module"

    def check(self, model):
        for m in analyse(model).missed:
            yield Finding(
                m.node,
                f"`{m.path}` gets new parameters after `{m.optimizer.label}` was built over `{m.holds}.parameters()`: "
                f"they receive gradients but the optimizer never holds them, so they never change; build the "
                f"optimizer after this",
            )
