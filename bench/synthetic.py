"""A deterministic synthetic corpus: training scripts and ordinary library modules at realistic ratios.

``write_corpus(folder, n, seed)`` writes ``n`` files below ``folder``; the same ``n`` and ``seed`` always
give the same bytes. The mix follows what the real corpora (pytorch/examples, nanoGPT, accelerate, ignite)
hold: most files are library code (utilities, configuration, models that define ``forward`` but never
train), about one in eight mentions a training step, and a few of those carry a bug the rules report
(a missing ``zero_grad``, a scheduler stepped per batch before the optimizer, a loss accumulated with its
graph). Sizes vary from a few dozen to about a thousand lines.
"""
from __future__ import annotations

import os
import random
from typing import List

TRAINING_SHARE = 0.12  # files that hold a training step (about 1 in 8 in the real corpora)
BUGGY_SHARE = 0.25  # of the training scripts, those with a bug looplint reports

_HEADER = '"""{doc}"""\nfrom __future__ import annotations\n\nimport math\nimport os\nfrom typing import Dict, List, Optional\n\n'


def _utility_function(rng: random.Random, i: int) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        return (
            f"def normalize_{i}(values: List[float], eps: float = 1e-8) -> List[float]:\n"
            f"    total = sum(v * v for v in values)\n"
            f"    norm = math.sqrt(total) + eps\n"
            f"    return [v / norm for v in values]\n\n\n"
        )
    if kind == 1:
        return (
            f"def read_table_{i}(path: str) -> Dict[str, str]:\n"
            f"    out = {{}}\n"
            f"    if not os.path.exists(path):\n"
            f"        return out\n"
            f"    with open(path) as f:\n"
            f"        for line in f:\n"
            f"            key, _, value = line.partition('=')\n"
            f"            if key.strip():\n"
            f"                out[key.strip()] = value.strip()\n"
            f"    return out\n\n\n"
        )
    if kind == 2:
        return (
            f"class Config{i}:\n"
            f"    def __init__(self, lr: float = 0.1, steps: int = {rng.randrange(10, 1000)}) -> None:\n"
            f"        self.lr = lr\n"
            f"        self.steps = steps\n"
            f"        self.extra: Dict[str, object] = {{}}\n\n"
            f"    def update(self, **kwargs) -> 'Config{i}':\n"
            f"        for key, value in kwargs.items():\n"
            f"            setattr(self, key, value)\n"
            f"        return self\n\n"
            f"    def __repr__(self) -> str:\n"
            f"        return f'Config{i}(lr={{self.lr}}, steps={{self.steps}})'\n\n\n"
        )
    return (
        f"def schedule_{i}(step: int, warmup: int = 100, total: int = 10000) -> float:\n"
        f"    if step < warmup:\n"
        f"        return step / max(1, warmup)\n"
        f"    progress = (step - warmup) / max(1, total - warmup)\n"
        f"    return 0.5 * (1.0 + math.cos(math.pi * progress))\n\n\n"
    )


def _model_class(rng: random.Random, i: int) -> str:
    width = rng.choice((64, 128, 256, 512))
    return (
        f"class Block{i}(nn.Module):\n"
        f"    def __init__(self, dim: int = {width}) -> None:\n"
        f"        super().__init__()\n"
        f"        self.norm = nn.LayerNorm(dim)\n"
        f"        self.fc1 = nn.Linear(dim, 4 * dim)\n"
        f"        self.fc2 = nn.Linear(4 * dim, dim)\n"
        f"        self.drop = nn.Dropout({rng.choice((0.0, 0.1, 0.2))})\n\n"
        f"    def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
        f"        h = self.fc1(self.norm(x))\n"
        f"        h = torch.nn.functional.gelu(h)\n"
        f"        return x + self.drop(self.fc2(h))\n\n\n"
    )


def library_module(rng: random.Random, index: int) -> str:
    parts = [_HEADER.format(doc=f"Library module {index}.")]
    uses_torch = rng.random() < 0.4
    if uses_torch:
        parts.append("import torch\nfrom torch import nn\n\n\n")
    for i in range(rng.randrange(2, 40)):
        if uses_torch and rng.random() < 0.3:
            parts.append(_model_class(rng, i))
        else:
            parts.append(_utility_function(rng, i))
    return "".join(parts)


def _train_loop(rng: random.Random, bug: str) -> str:
    zero = "" if bug == "no-zero-grad" else "            optimizer.zero_grad()\n"
    before = "            scheduler.step()\n" if bug == "scheduler-first" else ""
    after = "" if bug == "scheduler-first" else "        scheduler.step()\n"
    total = "            total += loss\n" if bug == "graph-accumulation" else "            total += loss.item()\n"
    return (
        "def train(model, loader, epochs: int = 10, lr: float = 0.1):\n"
        "    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)\n"
        "    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30)\n"
        "    criterion = nn.CrossEntropyLoss()\n"
        "    for epoch in range(epochs):\n"
        "        model.train()\n"
        "        total = 0.0\n"
        "        for inputs, targets in loader:\n"
        f"{zero}"
        f"{before}"
        "            outputs = model(inputs)\n"
        "            loss = criterion(outputs, targets)\n"
        "            loss.backward()\n"
        "            optimizer.step()\n"
        f"{total}"
        f"{after}"
        "        print(epoch, total / max(1, len(loader)))\n"
        f"    return model\n\n\n"
        "def evaluate(model, loader):\n"
        "    model.eval()\n"
        "    correct = 0\n"
        "    with torch.no_grad():\n"
        "        for inputs, targets in loader:\n"
        "            correct += (model(inputs).argmax(1) == targets).sum().item()\n"
        "    return correct / max(1, len(loader.dataset))\n\n\n"
    )


def training_script(rng: random.Random, index: int, bug: str) -> str:
    parts = [_HEADER.format(doc=f"Training script {index}."), "import torch\nfrom torch import nn\n\n\n"]
    for i in range(rng.randrange(1, 6)):
        parts.append(_model_class(rng, i))
    for i in range(rng.randrange(0, 8)):
        parts.append(_utility_function(rng, i))
    parts.append(_train_loop(rng, bug))
    parts.append(
        "if __name__ == '__main__':\n"
        "    model = Block0()\n"
        "    data = [(torch.randn(8, 64), torch.randint(0, 10, (8,))) for _ in range(4)]\n"
        "    train(model, data)\n"
        "    print(evaluate(model, data))\n"
    )
    return "".join(parts)


BUGS = ("no-zero-grad", "scheduler-first", "graph-accumulation")


def write_corpus(folder: str, n: int, seed: int = 0) -> List[str]:
    """Writes ``n`` files below ``folder`` (in package folders of up to 50 files); returns their paths."""
    rng = random.Random(seed)
    paths = []
    for index in range(n):
        package = os.path.join(folder, f"pkg{index // 50:04d}")
        os.makedirs(package, exist_ok=True)
        if rng.random() < TRAINING_SHARE:
            bug = rng.choice(BUGS) if rng.random() < BUGGY_SHARE else "none"
            text, name = training_script(rng, index, bug), f"train_{index:05d}.py"
        else:
            text, name = library_module(rng, index), f"module_{index:05d}.py"
        path = os.path.join(package, name)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        paths.append(path)
    return paths
