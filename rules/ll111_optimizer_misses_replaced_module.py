import libcst as cst

from looplint.fix import UNSAFE, Fix, code_of, depends_on, move_after, reads, tree_of, writes
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
    The fix moves the optimizer's constructor to just after the (last) replacement, so that it takes the
    new parameters. It is offered when the constructor and the replacements are statements of one block and
    nothing between them reads the optimizer or assigns what its arguments read, and it is unsafe: anything
    else between them (a checkpoint load, a `.to(device)`) now runs before the optimizer is built, and an
    old layer the optimizer was meant to hold (replaced on purpose to freeze it) is no longer held.
    """

    code = "LL111"
    name = "optimizer-misses-replaced-module"

    def check(self, model):
        missed = analyse(model).missed
        for m in missed:
            yield Finding(
                m.node,
                f"`{m.path}` gets new parameters after `{m.optimizer.label}` was built over `{m.holds}.parameters()`: "
                f"they receive gradients but the optimizer never holds them, so they never change; build the "
                f"optimizer after this",
                _fix(model, m, [o.node for o in missed if o.ctor is m.ctor]),
            )


def _fix(model, missed, replacing):
    """Moves the optimizer's constructor after the last of the statements ``replacing`` (the replacements
    found after it), when nothing between them uses the optimizer or changes what its arguments read."""
    tree = tree_of(model)
    ctor = tree.statement(missed.ctor)
    stmts = [tree.statement(n) for n in replacing]
    if ctor is None or not isinstance(ctor, cst.SimpleStatementLine) or len(ctor.body) != 1 \
            or not isinstance(ctor.body[0], cst.Assign):
        return None
    siblings = list(tree.siblings(ctor))
    if any(st is None or tree.block_of(st) is not tree.block_of(ctor) for st in stmts):
        return None
    last = max(siblings.index(st) for st in stmts)
    between = siblings[siblings.index(ctor) + 1:last + 1]
    others = [st for st in between if not any(st is r for r in stmts)]
    name = code_of(ctor.body[0].targets[0].target)
    if any(r == name or r.startswith(name + ".") for st in between for r in reads(st)):
        return None
    if depends_on(ctor.body[0].value, writes(others)):
        return None
    return Fix(f"Build `{name}` after the replacement", UNSAFE, move_after(ctor, siblings[last]))
