"""The low layer that tuners, training and downstream share: torch building blocks with no knowledge of corpora,
models or files.

- ``device``: the one device resolver (``auto`` → cuda, mps or cpu),
- ``seeding``: seeded torch generators and seeded module initialisation,
- ``optim``: optimizer construction,
- ``losses``: tensor losses as pure functions (InfoNCE, SupCon, CoSENT, MNRL, BYOL regression, MoCo),
- ``epochs``: the small epoch loop over in-memory tensors (early stopping, keep-best).
"""
