import re

import libcst as cst

from looplint.model import BATCH, EPOCH, STEP
from looplint.model.describe import call_text
from looplint.model.events import CONSTRUCT
from looplint.model.scopes import arg, keyword_arg, positional_args
from looplint.rule import Finding, Rule

TRAINING_LOOPS = (EPOCH, BATCH, STEP)


class OptimizerCreatedInLoop(Rule):
    """## What it does
    Checks for an optimizer constructed inside the training loop that steps it, over the parameters of
    a model that persists across iterations.

    ## Why is this bad?
    An optimizer keeps state between steps: momentum buffers, Adam's running averages and step count,
    a scheduler's reference to it. Building a new one every epoch (or every batch) throws that state
    away, so momentum never builds up and Adam restarts its bias correction each time; training is
    slower or unstable and nothing reports it.

    Rebuilding is fine, and not reported, when the model is rebuilt in the same loop (one model and
    optimizer per cross-validation fold), when only a few chosen iterations rebuild it (`if epoch == 0:`,
    `elif epoch in milestones:`: a learning-rate schedule written as new optimizers), when each pass of
    the loop is a whole training run (a function that builds its optimizer and runs
    `for it in range(n_iters):` itself, called once per continual-learning task) or when the loop is not
    the training loop.

    ## Example
    ```python
    for epoch in range(epochs):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for x, y in loader:
            ...
            optimizer.step()
    ```

    ## Use instead
    ```python
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for epoch in range(epochs):
        for x, y in loader:
            ...
            optimizer.step()
    ```

    ## Fix safety
    No fix is offered: hoisting the constructor out of the loop needs the model's life cycle (a model rebuilt per fold
    needs its optimizer rebuilt too).
    """

    code = "LL107"
    name = "optimizer-created-in-loop"

    def check(self, model):
        facts = model.facts
        for event, roles in list(facts.acted_on.items()):
            if event.kind != CONSTRUCT:
                continue
            for role in roles:
                if role.modules is None or role.ctor is not event.call or _stateless(role):
                    continue
                step_stacks = [stack for s in model.steps_of(role) for stack in model.loop_stacks(s)]
                step_loops = {l for stack in step_stacks for l in stack}
                for stack in model.loop_stacks(event):
                    if _whole_runs(stack, step_stacks):
                        continue  # each optimizer serves a complete multi-epoch fit (refitting per round)
                    hit = [l for l in stack if l.kind in TRAINING_LOOPS and l in step_loops and not _rebuilt(model, role, l)
                           and not model.runs_on_few_iterations(event, l)]
                    if hit:
                        yield Finding(
                            event.node,
                            f"`{call_text(event)}` builds a new optimizer on every pass of the training loop: "
                            f"its momentum/adaptive state is reset each time while the model's parameters persist",
                        )
                        break
                else:
                    fn = role.scope
                    if (fn is not None and fn in facts.roots and PER_EPOCH.search(fn.name) and () in model.loop_stacks(event)
                            and any(l.kind == BATCH for l in step_loops) and _held_from_outside(role, fn)):
                        # called from elsewhere once per epoch (its name says so), over a model it is given
                        yield Finding(
                            event.node,
                            f"`{call_text(event)}` builds a new optimizer on every call of `{fn.name}()`, once per "
                            f"epoch: its momentum/adaptive state is reset each epoch while the model's parameters persist",
                        )


def _whole_runs(construct_stack, step_stacks) -> bool:
    """Whether every step runs inside an epoch loop that the construction is outside of: the optimizer is
    built once per complete training run (a model refitted on new data each round), not once per epoch.
    Also when the loops around the construction are epochs only by what they run (``for task in tasks:``
    around a function that builds an optimizer and runs ``for it in range(n_iters):`` itself): one run per
    round, each with its own optimizer (continual learning), as long as a loop over the run's steps that
    the construction is outside of holds every step."""
    inside = set(construct_stack)
    if bool(step_stacks) and all(any(l.kind == EPOCH and l not in inside for l in stack) for stack in step_stacks):
        return True
    rounds = [l for l in construct_stack if l.kind == EPOCH]
    return bool(rounds and step_stacks) and all(l.epoch_by_content for l in rounds) and all(
        any(l.kind == STEP and l not in inside for l in stack) for stack in step_stacks)


def _stateless(role) -> bool:
    """Plain SGD without momentum keeps no state between steps: rebuilding it loses nothing."""
    if role.cls_name != "SGD" or role.ctor is None:
        return False
    momentum = keyword_arg(role.ctor, "momentum")
    if momentum is None:
        momentum = arg(role.ctor, 2, "momentum") if len(positional_args(role.ctor)) > 2 else None
    return momentum is None or (isinstance(momentum, (cst.Integer, cst.Float)) and float(momentum.value) == 0.0)


# a function that runs one epoch of training when called
PER_EPOCH = re.compile(r"(^|_)epoch($|_)|^epoch", re.I)


def _held_from_outside(role, fn) -> bool:
    """Whether every module the optimizer holds comes from outside the function (a parameter or an
    attribute of self), so it persists from one call to the next."""
    for key in role.modules:
        if ".self." in key:
            continue
        name = key.split(":", 1)[-1].split(".")[0]
        if name not in fn.params or name in fn.assigns:
            return False
    return True


def _rebuilt(model, role, loop) -> bool:
    """Whether a module whose parameters the optimizer holds is (re)built on every pass of the loop: assigned
    inside it, or built by the function that builds the optimizer when that function is called from the loop
    (each call makes a new one: ``probe = nn.Linear(...)``, not ``probe = self.probe``), or handed to that
    function as a module a call in the loop makes (``train(net=copy.deepcopy(g))``, ``fit(Net())``)."""
    called = role.scope is not None and loop.fn is not None and loop.fn is not role.scope
    for key in role.modules:
        if ".self." in key:
            attr = key.split(".self.", 1)[1].split(".")[0]
            if f"self.{attr}" in loop.assigned:
                return True
        else:
            name = key.split(":", 1)[-1].split(".")[0]
            if name in loop.assigned:
                return True
            if called and key.split(":", 1)[0] == role.scope.qualname and model.values.made_here(cst.Name(name), role.scope):
                return True
            if model.built_in(key, loop):
                return True  # a module a call in the loop makes: a client's copy of the model, a new Net()
    return False
