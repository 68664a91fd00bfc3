import libcst as cst

from looplint.model.describe import call_text
from looplint.model.events import BACKWARD, GRAD_CLEAR, MANUAL_UPDATE, STEP, ZERO
from looplint.model.roles import OPTIMIZER
from looplint.model.scopes import arg, dotted
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
    stays silent in that case, when the loop updates parameters by hand (`p.data.add_(p.grad, ...)`), when
    it reads the gradient of a tensor the optimizer was built over (a PGD attack's
    `x = (x.data + eps * x.grad.sign()).requires_grad_()`, with an optimizer used only to zero it), and
    when it hands the gradient tensors to a call it cannot see (`queue.put([p.grad.clone() for p in ...])`:
    a worker whose gradients another process applies), and when the file registers a backward hook
    (`register_full_backward_hook`, a tensor's `register_hook`): its backward passes then feed the hooks
    (a Fisher-information pass that only clears the gradients).

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

    ## Fix safety
    No fix is offered: adding a step and dropping the backward pass are both plausible repairs.
    """

    code = "LL105"
    name = "backward-without-step"

    def check(self, model):
        facts = model.facts
        stepped, zeroed = set(), {}
        optimizers = {r for rs in facts.acted_on.values() for r in rs if r.kind == OPTIMIZER}
        for event, roles in facts.acted_on.items():
            if event.kind == STEP:
                stepped.update(roles)
            elif event.kind in (ZERO, GRAD_CLEAR):
                # the gradients this optimizer holds are cleared on purpose: its own zero_grad(), or a
                # module's zero_grad() / ``p.grad = None`` over parameters it certainly holds
                frame = next(iter(facts.frames[event]))
                for r in roles:
                    if event.kind == ZERO and event.target is not None and model.roles.resolve(event.target, frame) is r:
                        zeroed.setdefault(r, []).append(event)  # an explicit optimizer.zero_grad()
                    elif _clears_exactly(model, event, frame, r, optimizers):
                        zeroed.setdefault(r, []).append(event)
        idle = [r for r in zeroed if r not in stepped and r not in facts.tainted]
        if not idle:
            return
        if any(getattr(i, "kind", None) == MANUAL_UPDATE for fn in facts.roots for i in model.walk(fn)):
            return
        if any(model.hands_out_gradients(fn) for fn in facts.roots):
            return  # the gradients go to code we cannot see (a queue to the process that steps)
        if model.registers_gradient_hooks:
            return  # the backward passes feed hooks that read the gradients (statistics, not training)
        for role in idle:
            if any(model.reads_gradients_of(fn, _handed_tensors(role)) for fn in facts.roots):
                continue  # the gradients are read (``x = x.data + eps * x.grad.sign()``): applied by hand
            # the loop a zeroing belongs to: not the ``for p in M.parameters()`` a ``p.grad = None`` runs in
            zero_loops = {stack[-1] for z in zeroed[role] for stack in model.loop_stacks(z, over_parameters=False) if stack}
            for event in (e for e in facts.loops if e.kind == BACKWARD and not e.dist):
                loops = {l for stack in model.loop_stacks(event) for l in stack}
                if loops & zero_loops and model.in_real_loop(event):
                    yield Finding(
                        event.node,
                        f"`{call_text(event)}` computes gradients that are never applied: `{role.label}` is "
                        f"zeroed in this loop but never stepped, so the parameters do not change",
                    )


def _handed_tensors(role) -> frozenset:
    """The tensors an optimizer was built over by name (``SGD([x_adv], lr=...)``, ``Adam((mu, logvar))``)."""
    params = arg(role.ctor, 0, "params") if role.ctor is not None else None
    if not isinstance(params, (cst.List, cst.Tuple)):
        return frozenset()
    return frozenset(d for d in (dotted(e.value) for e in params.elements) if d is not None)


def _clears_exactly(model, event, frame, role, optimizers) -> bool:
    """A module's ``zero_grad()`` or ``p.grad = None`` over ``M.parameters()`` where ``M`` is the module this
    optimizer, and no other optimizer of the file, was built over."""
    expr = event.param_loop_module if event.kind == GRAD_CLEAR else event.target
    key = model.roles.module_key(expr, frame) if expr is not None else None
    if key is None or not role.modules or (set(role.modules) != {key} and role.own_modules != {key}):
        return False  # built over other modules too (a module known by several names counts once)
    return not any(r.modules is None or key in r.modules for r in optimizers if r is not role)
