import numpy as np
import pytest

from reasonbench.tasks.symmetry import dihedral, inverse_dihedral

GRID = np.arange(12).reshape(3, 4)
EXPECTED = [GRID, np.rot90(GRID, 1), np.rot90(GRID, 2), np.rot90(GRID, 3), np.fliplr(GRID), np.flipud(GRID),
            GRID.T, np.fliplr(np.rot90(GRID, 1))]


@pytest.mark.parametrize("t", range(8))
def test_reference_numbering_inverse_and_batching(t):
    assert np.array_equal(dihedral(GRID, t), EXPECTED[t])
    assert np.array_equal(inverse_dihedral(dihedral(GRID, t), t), GRID)
    batch = np.stack([GRID, GRID + 100])
    assert np.array_equal(dihedral(batch, t)[1], EXPECTED[t] + 100)


def test_bad_index():
    with pytest.raises(ValueError, match="0..7"):
        dihedral(GRID, 8)
