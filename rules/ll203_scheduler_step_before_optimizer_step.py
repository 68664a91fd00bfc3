import libcst as cst

from looplint.fix import SAFE, UNSAFE, Fix, code_of, function_events, move_after, tree_of
from looplint.model.describe import call_text
from looplint.model.events import CALL, STEP, Event
from looplint.model.interp import items_below
from looplint.model.schedulers import PLATEAU, presence_test, scheduler_steps
from looplint.rule import Finding, Rule


class SchedulerStepBeforeOptimizerStep(Rule):
    """## What it does
    Checks for a learning-rate scheduler stepped before its optimizer has ever stepped, in the same loop
    iteration that then steps the optimizer: `scheduler.step()` at the top of the epoch loop (the pre-1.1
    PyTorch idiom), or before `optimizer.step()` in the batch loop. A same-module helper that steps the
    optimizer after the scheduler counts too.

    ## Why is this bad?
    Since PyTorch 1.1 a scheduler's `step()` moves to the *next* learning rate. Called before the first
    `optimizer.step()` it skips the schedule's first value: every epoch (or batch) trains with the rate
    meant for the following one, milestones arrive one epoch early, and warmup starts past its first
    step. PyTorch warns about it once at run time; the training itself gives no sign.

    ## Known problems
    Calls that pass the epoch explicitly (`scheduler.step(epoch)`) set the rate in closed form and are not
    reported, nor are steps under a condition that may change within the loop (`if epoch > 0:`; a setting
    such as `if args.use_lr_decay:` takes the same arm on every epoch and is reported), `ReduceLROnPlateau`, or
    schedulers of unknown kind (built from configuration or in another module).

    ## Example
    ```python
    for epoch in range(epochs):
        scheduler.step()
        for x, y in loader:
            ...
            optimizer.step()
    ```

    ## Use instead
    ```python
    for epoch in range(epochs):
        for x, y in loader:
            ...
            optimizer.step()
        scheduler.step()
    ```

    ## Fix safety
    The fix moves `scheduler.step()` (with an `if` that guards only it) after the statement of its block
    that runs the optimizer step: after `optimizer.step()`, after the batch loop, or after the call of
    the helper that trains. It is safe when nothing stands between the two; unsafe when statements in
    between may read the learning rate (logging, checkpoints). No fix is offered when the scheduler step
    is guarded together with other statements (a phase loop's `if phase == "train":`).

    ## References
    - [PyTorch: How to adjust learning rate](https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate)
    """

    code = "LL203"
    name = "scheduler-step-before-optimizer-step"

    def check(self, model):
        facts = model.facts
        for event, role, kind in scheduler_steps(model):
            if event not in facts.sched_before_step or not kind.known or kind.unit == PLATEAU:
                continue
            if event.call is None or event.call.args:
                continue
            # within the loop iteration that runs it, the step is unconditional, or its conditions also
            # guard the optimizer step it precedes (``if phase == "train":`` around both)
            contexts = facts.contexts.get(event, ())
            if not contexts or not all(_same_guards(model, conds, stack, facts.sched_before_step[event])
                                       for stack, conds in contexts if stack):
                continue
            first = sorted(call_text(e) for e in facts.sched_before_step[event])[0]
            yield Finding(
                event.node,
                f"`{call_text(event)}` runs before the first `{first}`: the schedule skips its first "
                f"learning rate and every later value is applied one step early",
                _fix(model, event, facts.sched_before_step[event]),
            )


def _same_guards(model, conds, stack, optimizer_steps) -> bool:
    """Whether every condition guarding the scheduler step inside its loop also guards one of the optimizer
    steps it precedes, in every context of that step (so it cannot skip the first iteration alone). A test
    of whether there is a scheduler, or of a setting none of the loops around it changes
    (``FileModel.varies_in``), takes the same arm on every iteration: when the step runs, it runs first."""
    facts, depth = model.facts, len(stack)
    gates = {(c[0], c[1]) for c in conds if c[2] >= depth and not presence_test(c[0], c[1])
             and any(model.varies_in(c[0], loop) for loop in stack)}
    if not gates:
        return True
    if any(key is None for key, _ in gates):
        return False
    for step in optimizer_steps:
        contexts = facts.contexts.get(step, ())
        if contexts and all(gates <= {(c[0], c[1]) for c in step_conds} for _stack, step_conds in contexts):
            return True
    return False


def _fix(model, event, optimizer_steps):
    """Moves the scheduler step (with an ``if`` that only guards it) after the statement of its block that
    runs the optimizer step it precedes."""
    tree = tree_of(model)
    fn = model.function_of(event)
    unit = tree.sole_call_statement(event.call)
    if unit is None or fn is None:
        return None
    while True:  # ``if scheduler is not None: scheduler.step()`` moves as a whole
        block = tree.block_of(unit)
        owner = tree.parent(block)
        if (isinstance(owner, cst.If) and owner.orelse is None and len(block.body) == 1
                and tree.block_of(owner) is not None and tree.enclosing(owner, (cst.For, cst.While)) is not None):
            unit = owner
        else:
            break
    steps = {id(s.node) for s in optimizer_steps}
    stepping = [e.node for e in function_events(model, fn, (STEP,)) if id(e.node) in steps]
    stepping += [e.node for e in function_events(model, fn, (CALL,))
                 if any(id(i.node) in steps for i in items_below(model.builder.body(e.callee)) if isinstance(i, Event))]
    siblings = list(tree.siblings(unit))
    later = siblings[siblings.index(unit) + 1:]
    anchors = [st for st in later if any(any(a is st for a in tree.ancestors(n)) or n is st for n in stepping)]
    if not anchors:
        return None
    anchor = anchors[-1]
    safe = later.index(anchor) == 0
    return Fix(f"Move `{code_of(event.call)}` after the optimizer step", SAFE if safe else UNSAFE,
               move_after(unit, anchor))
