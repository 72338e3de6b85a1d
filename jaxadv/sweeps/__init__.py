"""Sweeps at scale: declarative grids, one compiled program per victim and attack structure,
sharded over devices and processes, checkpointed with orbax, ending in a tidy table."""

from jaxadv.sweeps._config import GridSpec as GridSpec
from jaxadv.sweeps._config import SweepConfig as SweepConfig
from jaxadv.sweeps._config import load_config as load_config
from jaxadv.sweeps._distributed import initialize as initialize
from jaxadv.sweeps._figures import plot_operating_characteristic as plot_operating_characteristic
from jaxadv.sweeps._figures import plot_robust_accuracy as plot_robust_accuracy
from jaxadv.sweeps._figures import plot_success_vs_queries as plot_success_vs_queries
from jaxadv.sweeps._grid import Entries as Entries
from jaxadv.sweeps._grid import Grid as Grid
from jaxadv.sweeps._progress import Progress as Progress
from jaxadv.sweeps._run import SweepRun as SweepRun
from jaxadv.sweeps._run import run_grid as run_grid
from jaxadv.sweeps._sweep import concat_tables as concat_tables
from jaxadv.sweeps._sweep import run_sweep as run_sweep
from jaxadv.sweeps._table import markdown_summary as markdown_summary
from jaxadv.sweeps._table import read_table as read_table
from jaxadv.sweeps._table import summarize as summarize
from jaxadv.sweeps._table import write_table as write_table
