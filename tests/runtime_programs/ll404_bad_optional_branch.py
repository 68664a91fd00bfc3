import torch
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
loader = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=8)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
scaler = torch.amp.GradScaler("cpu")


def step(loss, use_amp):
    if use_amp:
        scaler.scale(loss).backward()
    else:
        loss.backward()
    optimizer.step()  # expect: LL404


for epoch in range(2):
    for x, y in loader:
        optimizer.zero_grad()
        step(torch.nn.functional.mse_loss(model(x), y), use_amp=epoch == 1)
