"""zero_grad inside the batch loop and the step after it: only the last batch's gradient is applied."""
import torch

torch.manual_seed(0)
batches = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(4)]
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

for epoch in range(3):
    for x, y in batches:
        optimizer.zero_grad()  # expect: LL108
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
    optimizer.step()
