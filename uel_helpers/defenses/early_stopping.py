"""Early stopping as a defense: the same training, read at its best epoch instead of its last.

Poisons are often learned fast and clean features later, or the other way round; clean test accuracy
can peak early and then fall (notebook 02, "Poisons that are learned faster are more effective"). The
peak is an optimistic reading (it looks at the test set to choose the epoch), so it is reported as an
upper bound on what early stopping with a validation set would give.
"""

from __future__ import annotations

from .registry import Defense, add

add(Defense("early-stopping", "early stopping: the same training as 'none', reported at its peak epoch "
            "(best clean test accuracy over the epochs) instead of the final one", kind="reading", reading="peak"))
