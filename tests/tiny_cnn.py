"""The tiny searchable CNN that the end-to-end tests and scripts share.

Its larger variants exceed a fraction of a millisecond on the xc7z020, so a
spec in that range rejects some children and accepts others.
"""

import keras


def add_conv_stack(model: keras.Sequential, hp, max_layers: int) -> None:
    """Adds 1..max_layers Conv2D layers whose count is a hyperparameter."""
    for i in range(hp.Int("num_layers", 1, max_layers)):
        model.add(
            keras.layers.Conv2D(
                hp.Int(f"filters_{i}", 4, 16, step=12),
                hp.Choice(f"kernel_{i}", [3, 5]),
                padding="same",
                activation="relu",
            )
        )


def finish(model: keras.Sequential, optimizer) -> keras.Sequential:
    """Adds the classifier head and compiles for 10 classes."""
    model.add(keras.layers.GlobalAveragePooling2D())
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
