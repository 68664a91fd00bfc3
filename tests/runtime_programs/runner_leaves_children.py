"""Starts processes that would outlive it (one in its own session, as a daemon does; one plain child, and a
grandchild through a shell) and ends normally: the runner must end them all. Their pids go to stderr."""
import subprocess
import sys

import torch

model = torch.nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
optimizer.zero_grad()
model(torch.randn(4, 2)).sum().backward()
optimizer.step()

SLEEP = [sys.executable, "-c", "import time; time.sleep(600)", "looplint-leftover"]
detached = subprocess.Popen(SLEEP, start_new_session=True)  # setsid(): its own session
child = subprocess.Popen(SLEEP)
shell = subprocess.Popen(["/bin/sh", "-c", '"$0" "$@" & echo $!; wait'] + SLEEP, stdout=subprocess.PIPE, text=True)
grandchild = int(shell.stdout.readline())
print("PIDS", detached.pid, child.pid, shell.pid, grandchild, file=sys.stderr, flush=True)
