from looplint.model import NONE
from looplint.model.closures import backward_runs, closure_steps, runs, unseen_effects, zeroes
from looplint.model.describe import call_text
from looplint.rule import Finding, Rule


class ClosureMissingBackward(Rule):
    """## What it does
    Checks for a closure passed to `optimizer.step(closure)` that never calls `backward()` (directly or
    through a function of the same module), including a closure that only returns a loss computed before
    it (`optimizer.step(lambda: loss)`).

    ## Why is this bad?
    The point of a closure is to recompute the loss *and its gradients* at the optimizer's request. LBFGS
    re-evaluates it at new parameter values during its line search: a closure without `backward()`
    returns a stale loss and leaves stale (or no) gradients, so the search compares numbers that do not
    change and the step is wrong. With an optimizer that evaluates the closure once, a closure without
    `backward()` and no backward before the step leaves the optimizer with no gradients at all.

    ## Known problems
    A call into another module that receives the loss or the optimizer, or is named like a backward or
    training step, may run `backward()`: looplint then stays silent. A closure handed to an optimizer
    built outside the file (which may be gradient-free) is judged only when it clears the gradients.

    ## Example
    ```python
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step(lambda: loss)
    ```

    ## Use instead
    ```python
    def closure():
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    ```

    ## Fix safety
    No fix is offered: the loss to backpropagate cannot be chosen for the author.
    """

    code = "LL303"
    name = "closure-missing-backward"

    def check(self, model):
        facts = model.facts
        reported = set()
        for cs in closure_steps(model):
            if id(cs.node) in reported:
                continue
            events = runs(model, cs.closure)
            if backward_runs(events) or unseen_effects(model, cs)[0]:
                continue
            if cs.re_evaluated:
                message = (f"closure `{cs.name}` passed to `{call_text(cs.step)}` never calls `backward()`: LBFGS "
                           f"re-evaluates it and sees the same stale loss and gradients every time")
            else:
                if cs.optimizer.evidence != "constructor" and not zeroes(events):
                    # an optimizer built elsewhere may be gradient-free, or a wrapper that computes gradients
                    # its own way; a closure that clears the gradients follows the gradient protocol, whatever
                    # the optimizer is, and must then compute them again
                    continue
                states = facts.incoming.get((cs.step, cs.optimizer), set())
                if not states or any(s.gs != NONE or s.doubt for s in states) or cs.optimizer in facts.tainted:
                    continue
                message = (f"closure `{cs.name}` passed to `{call_text(cs.step)}` never calls `backward()` and no "
                           f"backward runs before the step: the optimizer receives no gradients")
            reported.add(id(cs.node))
            yield Finding(cs.node, message)
