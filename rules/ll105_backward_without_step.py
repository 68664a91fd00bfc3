from looplint.model.describe import call_text
from looplint.model.events import BACKWARD, MANUAL_UPDATE, STEP, ZERO
from looplint.rule import Finding, Rule


class BackwardWithoutStep(Rule):
    """## What it does
    Checks for a training loop that zeroes an optimizer and runs `backward()` but never steps that
    optimizer.

    ## Why is this bad?
    Gradients are computed and thrown away on every iteration: the loss is evaluated, the time is spent,
    and the parameters never change.

    ## Known problems
    A step made in another module, through a call that receives the optimizer, is invisible; looplint
    stays silent in that case, and when the loop updates parameters by hand (`p.data.add_(p.grad, ...)`).

    ## Example
    ```python
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
    ```

    ## Use instead
    ```python
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    ```
    """

    code = "LL105"
    name = "backward-without-step"

    def check(self, model):
        facts = model.facts
        stepped, zeroed = set(), {}
        for event, roles in facts.acted_on.items():
            if event.kind == STEP:
                stepped.update(roles)
            elif event.kind == ZERO:
                for r in roles:
                    target = model.roles.resolve(event.target, next(iter(facts.frames[event]))) if event.target is not None else None
                    if target is r:  # an explicit optimizer.zero_grad(), not a module's
                        zeroed.setdefault(r, []).append(event)
        idle = [r for r in zeroed if r not in stepped and r not in facts.tainted]
        if not idle:
            return
        if any(getattr(i, "kind", None) == MANUAL_UPDATE for fn in facts.roots for i in model.walk(fn)):
            return
        for role in idle:
            zero_loops = {stack[-1] for z in zeroed[role] for stack in model.loop_stacks(z) if stack}
            for event in (e for e in facts.loops if e.kind == BACKWARD and not e.dist):
                loops = {l for stack in model.loop_stacks(event) for l in stack}
                if loops & zero_loops and model.in_real_loop(event):
                    yield Finding(
                        event.node,
                        f"`{call_text(event)}` computes gradients that are never applied: `{role.label}` is "
                        f"zeroed in this loop but never stepped, so the parameters do not change",
                    )
