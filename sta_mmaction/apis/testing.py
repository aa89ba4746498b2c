"""Set up and run an MMAction2 test the way ``tools/test.py`` does.

MMAction2's own test script, plus: the checkpoint must fill the whole model
(``CheckpointKeysHook``), the data are validated (``wire_test_data``),
GFLOPs, tokens and provenance are reported beside the accuracy, and the
work dir is named by the ``r`` that actually runs.
"""
import contextlib
import copy
import os
import os.path as osp
import re
from typing import Dict, Iterator, Optional, Union

from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner

from mmaction.registry import RUNNERS
from ..datasets import single_view_pipeline, wire_test_data
from ..engine import add_test_hooks
from .cli import check_output_dir, check_output_file
from ..engine.test_loop import check_amp
from ..engine.run_logging import BriefConsoleRunner, quiet_repeated_warnings
from ..models import pruning_of


def configure_test(config: Union[str, Config],
                   checkpoint: Optional[str] = None, *,
                   work_dir: Optional[str] = None,
                   cfg_options: Optional[Dict] = None,
                   launcher: str = 'none', dump: Optional[str] = None,
                   skip_corrupt_videos: bool = False,
                   allow_partial_load: bool = False, quick: bool = False,
                   show: bool = False, show_dir: Optional[str] = None,
                   interval: int = 1, wait_time: float = 2,
                   fused_attention: bool = False, amp: Optional[str] = None,
                   compile: bool = False, verbose: bool = False) -> Config:
    """The config of one test run, as ``tools/test.py`` runs it.

    Args:
        config (str or Config): Test config file, or a loaded one (copied).
        checkpoint (str, optional): File or URL. Defaults to None, the
            config's ``load_from``.
        work_dir (str, optional): Logs and metrics JSON. Defaults to None:
            the config's, else :func:`default_work_dir`.
        cfg_options (dict, optional): Merged into the config. Defaults to None.
        launcher (str): mmengine launcher. Defaults to ``'none'``.
        dump (str, optional): ``.pkl`` file for the predictions, each with
            its video's file name and index. Defaults to None.
        skip_corrupt_videos (bool): Skip, count and list unreadable videos
            instead of stopping. Defaults to False.
        allow_partial_load (bool): Let the checkpoint leave tensors at their
            random init (listed in the metrics). Defaults to False.
        quick (bool): 1 clip x 1 centre crop per video instead of the
            config's views. Defaults to False.
        show (bool): Show predictions in a window. Defaults to False.
        show_dir (str, optional): Save visualizations here. Defaults to None.
        interval (int): Visualize every ``interval`` samples. Defaults to 1.
        wait_time (float): Seconds each window shows. Defaults to 2.
        fused_attention (bool): Turn on fused attention where the config
            prunes (:func:`use_fused_attention`). Defaults to False.
        amp (str, optional): ``'bf16'`` (CPU, CUDA) or ``'fp16'`` (CUDA)
            autocast (``STATestLoop``). Defaults to None, float32.
        compile (bool): ``torch.compile`` the backbone before the first
            forward (``STATestLoop``). Defaults to False.
        verbose (bool): Show mmengine's environment, config and hook-order
            dumps on the console too (:class:`BriefConsoleRunner`; they are
            always in the log file). Defaults to False.

    Returns:
        Config: Ready for :func:`run_test`.
    """
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
        config = cfg.filename or 'config.py'
    else:
        cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    if verbose:
        cfg.verbose = True
    if show or show_dir is not None:
        if 'visualization' not in cfg.default_hooks:
            raise ValueError(
                '--show/--show-dir need a VisualizationHook: set '
                'default_hooks.visualization=dict(type="VisualizationHook").')
        cfg.default_hooks.visualization.update(
            enable=True, show=show, wait_time=wait_time, out_dir=show_dir,
            interval=interval)
    if quick:
        cfg.test_dataloader.dataset.pipeline = single_view_pipeline(cfg)
        cfg.test_protocol = 'quick'
    cfg.load_from = checkpoint or cfg.get('load_from')
    if not cfg.load_from:
        raise ValueError(
            f'No checkpoint: {config} sets no load_from and none was given. '
            'Pass one: python tools/test.py CONFIG CHECKPOINT.')
    if allow_partial_load:
        cfg.allow_partial_load = True
    if fused_attention:
        use_fused_attention(cfg)
    use_test_loop(cfg, amp, compile)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(cfg, config)
    check_output_dir(cfg.work_dir, '--work-dir')
    if show_dir is not None:
        check_output_dir(show_dir, '--show-dir')
    if dump is not None:
        check_output_file(dump, '--dump')
        check_output_dir(osp.dirname(osp.abspath(dump)), '--dump folder')
    cap_workers(cfg)
    wire_test_data(cfg, skip_corrupt=skip_corrupt_videos, dump_file=dump)
    add_test_hooks(cfg)
    logger = cfg.get('default_hooks', {}).get('logger')
    if logger is not None and logger.get('type') in ('LoggerHook',
                                                     'mmengine.LoggerHook'):
        logger['type'] = 'MainRankJsonLoggerHook'
    return cfg


def use_fused_attention(cfg: Config) -> None:
    """Turn on ``fused_attention`` on the ``STAPruningHook``, else backbone.

    A stock backbone that nothing converts would silently ignore it
    (``VisionTransformer`` swallows unknown arguments): a ``ValueError``.
    """
    pruning = pruning_of(cfg)
    if pruning.drop_number is None:
        raise ValueError(
            '--fused-attention needs an STA backbone (STAViT, STASwin3D) or '
            'an STAPruningHook, but model.backbone.type='
            f'{cfg.model.backbone.get("type")!r} and custom_hooks has no '
            "STAPruningHook; add custom_hooks=[dict(type='STAPruningHook', "
            'drop_number=0)] to run the stock weights with it.')
    if pruning.hook:
        for hook in cfg.custom_hooks:
            if hook.get('type') == 'STAPruningHook':
                hook['fused_attention'] = True
    else:
        cfg.model.backbone.fused_attention = True


def use_test_loop(cfg: Config, amp: Optional[str], compile: bool) -> None:
    """Run the test through ``STATestLoop`` with ``amp`` and ``compile``.

    See :mod:`sta_mmaction.engine.test_loop` for why. The config's own
    ``TestLoop`` settings are kept (its ``amp``, ``compile`` or mmengine's
    ``fp16`` too, which is why a config's loop is checked also without
    ``--amp``/``--compile``); another loop type is a ``ValueError``.
    """
    import torch
    loop = dict(cfg.get('test_cfg') or dict(type='TestLoop'))
    amp = amp if amp is not None else loop.get('amp')
    compile = compile or loop.get('compile', False)
    check_amp(amp, 'cuda' if torch.cuda.is_available() else 'cpu',
              bool(loop.get('fp16')))
    if not (amp or compile or loop.get('fp16')):
        return
    if loop.get('type', 'TestLoop') not in ('TestLoop', 'STATestLoop'):
        raise ValueError(
            f"test_cfg.type={loop['type']!r}: --amp and --compile run the "
            "test through STATestLoop, a TestLoop; use test_cfg=dict("
            "type='TestLoop') or drop --amp/--compile.")
    # fp16 (CUDA only, checked above) through STATestLoop, whose scores
    # leave float32 for the metrics
    loop.update(type='STATestLoop', amp=amp, compile=compile)
    cfg.test_cfg = loop


def default_work_dir(cfg: Config, config: str) -> str:
    """``work_dirs/<name>``, where the name says which ``r`` ran.

    A trailing ``_r<N>`` of the config's name becomes the ``r`` the run
    uses, so an override never overwrites another r's files; a strategy
    other than ``'sta'``, RLT's threshold (``_rlt0.1``), fused attention
    (``_fused``), a test loop's autocast (``_bf16``, ``_fp16``) and the quick
    protocol are appended.
    """
    name = osp.splitext(osp.basename(config))[0]
    pruning = pruning_of(cfg)
    if pruning.drop_number is not None:
        name = re.sub(r'_r\d+$', '', name) + f'_r{pruning.drop_number}'
    if pruning.strategy not in (None, 'sta'):
        name += f'_{pruning.strategy}'
    if pruning.settings.get('rlt_threshold') is not None:
        name += f'_rlt{pruning.settings["rlt_threshold"]}'
    if pruning.settings.get('fused_attention'):
        name += '_fused'
    loop = cfg.get('test_cfg') or {}
    precision = loop.get('amp') or ('fp16' if loop.get('fp16') else None)
    if precision:
        name += f'_{precision}'
    if cfg.get('test_protocol') == 'quick':
        name += '_quick'
    return osp.join('work_dirs', name)


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cap_workers(cfg: Config) -> None:
    """Cap the test dataloader's workers at the machine's cores.

    MMAction2's configs ask for 8 workers, which on a small machine only
    compete with the model. With no workers, ``persistent_workers=True``
    would make torch's DataLoader refuse to start, so it is turned off.
    """
    loader = cfg.test_dataloader
    cores = usable_cores()
    asked = loader.get('num_workers', 0)
    if asked > cores:
        loader.num_workers = cores
        print_log(
            f'test_dataloader.num_workers={asked} capped at the {cores} '
            'cores of this machine.', logger='current')
    if loader.get('num_workers', 0) == 0 and loader.get('persistent_workers'):
        loader.persistent_workers = False


def init_cpu_dist(cfg: Config) -> None:
    """Start the process group for ``--launcher pytorch`` without CUDA.

    mmengine's pytorch launcher calls ``torch.cuda.set_device`` and its
    wrapper passes ``device_ids=[LOCAL_RANK]``; both fail on CPU-only torch,
    so the group is started here and the wrapper gets no device ids.
    """
    import torch
    import torch.distributed as dist
    if torch.cuda.is_available() or dist.is_initialized():
        return
    backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend')
    if backend != 'gloo':
        raise ValueError(
            f'env_cfg.dist_cfg.backend={backend!r} needs CUDA, which this '
            'machine lacks; on CPU use --cfg-options '
            'env_cfg.dist_cfg.backend=gloo.')
    dist.init_process_group(backend='gloo')
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel',
                                     device_ids=None, broadcast_buffers=False)


def run_test(cfg: Config) -> Dict:
    """Build the Runner from ``cfg`` and test; returns the metrics.

    They hold the accuracy, the backbone report (``gflops_per_view``, ...)
    and :class:`~sta_mmaction.engine.ProvenanceHook`'s record.
    """
    cfg = copy.deepcopy(cfg)
    with runner_of(cfg) as runner:
        quiet_repeated_warnings(runner.logger)
        return dict(runner.test())


@contextlib.contextmanager
def runner_of(cfg: Config) -> Iterator[Runner]:
    """The Runner of ``cfg`` (a :class:`BriefConsoleRunner` unless it names
    a ``runner_type``), inside the process group the run needs.

    ``launcher='pytorch'`` starts the group also without CUDA
    (:func:`init_cpu_dist`); a group this run started is closed afterwards,
    one that was already up (a caller's) is left alone.
    """
    import torch.distributed as dist
    group_was_up = dist.is_available() and dist.is_initialized()
    if cfg.get('launcher') == 'pytorch':
        init_cpu_dist(cfg)
    yield BriefConsoleRunner.from_cfg(cfg) if 'runner_type' not in cfg \
        else RUNNERS.build(cfg)
    # only after a finished run: a rank that failed never reaches a barrier
    if not group_was_up:
        close_process_group()


def close_process_group() -> None:
    """Close the process group this run started, after all ranks are done.

    Left to interpreter exit, a rank whose peer has gone can abort in gloo's
    teardown, and torchrun then fails the whole run.
    """
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        return
    dist.barrier()
    dist.destroy_process_group()
