"""What the plan checks and fits beside the model before training starts, each a step of its own: the baseline
(the task's estimator on the modality's linear view), suspect labels (an out-of-fold model that confidently
disagrees), whether mirroring keeps an image's class, and how much of a person's own test file repeats the
training data."""
