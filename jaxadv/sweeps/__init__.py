"""Sweeps at scale: declarative grids, one compiled program per victim and attack structure,
sharded over devices and processes, checkpointed with orbax, ending in a tidy table.

In code::

    grid = Grid(pgd(steps=20), images, labels, params={"eps": [0.1, 0.2, 0.3]}, restarts=2)
    run = run_grid(victim, grid, chunk_size=256, checkpoint_dir="ckpt")   # resumes if killed
    summary = summarize(run.table)

From the command line, with a config file defining ``get_config(arg)`` (see ``_config.py`` and
``experiments/sweeps/``)::

    python -m jaxadv sweep experiments/sweeps/pgd_eps_grid.py[:smoke] --out DIR [--fresh]
        [--chunk-size N] [--coordinator HOST:PORT --num-processes N --process-id I]

Results do not depend on the chunk size or on the number of devices and processes (bit for bit)
as long as ``micro_batch`` stays the same.
"""

from jaxadv.sweeps._config import GridSpec as GridSpec
from jaxadv.sweeps._config import SweepConfig as SweepConfig
from jaxadv.sweeps._config import load_config as load_config
from jaxadv.sweeps._distributed import from_environment as distributed_from_environment
from jaxadv.sweeps._distributed import initialize as initialize
from jaxadv.sweeps._distributed import shutdown as shutdown
from jaxadv.sweeps._figures import BUDGET_UNITS as BUDGET_UNITS
from jaxadv.sweeps._figures import plot_operating_characteristic as plot_operating_characteristic
from jaxadv.sweeps._figures import plot_robust_accuracy as plot_robust_accuracy
from jaxadv.sweeps._figures import plot_success_vs_queries as plot_success_vs_queries
from jaxadv.sweeps._grid import Entries as Entries
from jaxadv.sweeps._grid import Grid as Grid
from jaxadv.sweeps._pandas import read_dataframe as read_dataframe
from jaxadv.sweeps._pandas import to_dataframe as to_dataframe
from jaxadv.sweeps._program import used_fields as used_fields
from jaxadv.sweeps._progress import Progress as Progress
from jaxadv.sweeps._run import SweepRun as SweepRun
from jaxadv.sweeps._run import budget_norm as budget_norm
from jaxadv.sweeps._run import run_grid as run_grid
from jaxadv.sweeps._sweep import concat_tables as concat_tables
from jaxadv.sweeps._sweep import run_sweep as run_sweep
from jaxadv.sweeps._table import markdown_summary as markdown_summary
from jaxadv.sweeps._table import read_table as read_table
from jaxadv.sweeps._table import summarize as summarize
from jaxadv.sweeps._table import write_table as write_table
