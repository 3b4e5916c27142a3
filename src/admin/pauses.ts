import type { Clock } from '../clock.js';
import { InvalidOptionsError } from '../errors.js';
import { assertKnownOptions, optionNames } from '../known-options.js';
import { ALL_KINDS, type ControlStore, type PauseEntry } from '../store/control-store.js';
import { kindOf, type TaskDefinition } from '../task-definition.js';
import type { ProcessControl } from '../worker/process-control.js';

/** Pausing kinds across every process of an environment (see `ControlStore`). */

/** Options of {@link OnceTaskManager.pause}. */
export interface PauseOptions {
  /** The kind to pause (a definition or its name). Default: every kind. */
  kind?: TaskDefinition | string;
  /** Resume by itself at this time. Default: paused until `resume`. */
  until?: Date;
}

/** Options of {@link OnceTaskManager.resume}. */
export interface ResumeOptions {
  /** The kind to resume. Default: every pause is lifted (of all kinds and of each kind). */
  kind?: TaskDefinition | string;
}

/** A pause in force, from {@link OnceTaskManager.paused}. */
export interface PauseInfo {
  /** The paused kind; null: every kind. */
  kind: string | null;
  /** When it was paused. */
  since: Date;
  /** When it resumes by itself; null: when `resume` is called. */
  until: Date | null;
}

const PAUSE_OPTIONS = optionNames<PauseOptions>()(['kind', 'until']);
const RESUME_OPTIONS = optionNames<ResumeOptions>()(['kind']);

export class Pauses {
  constructor(
    private readonly control: ControlStore,
    private readonly local: ProcessControl,
    private readonly clock: Clock,
  ) {}

  async pause(options: PauseOptions): Promise<void> {
    assertKnownOptions(options, PAUSE_OPTIONS, 'pause');
    const key = options.kind === undefined ? ALL_KINDS : kindOf(options.kind, 'pause: option "kind"');
    const { until } = options;
    if (until !== undefined && (!(until instanceof Date) || Number.isNaN(until.getTime()))) throw new InvalidOptionsError('pause: option "until" must be a valid Date');
    const now = this.clock();
    const next = await this.control.updatePauses((pauses) => {
      const kept = live(pauses, now);
      kept.set(key, { at: new Date(now), until: until ?? null });
      return kept;
    });
    this.local.apply(next);
  }

  async resume(options: ResumeOptions): Promise<void> {
    assertKnownOptions(options, RESUME_OPTIONS, 'resume');
    const key = options.kind === undefined ? null : kindOf(options.kind, 'resume: option "kind"');
    const now = this.clock();
    const next = await this.control.updatePauses((pauses) => {
      const kept = live(pauses, now);
      if (key === null) kept.clear();
      else kept.delete(key);
      return kept;
    });
    this.local.apply(next);
  }

  async paused(): Promise<PauseInfo[]> {
    const now = this.clock();
    return [...live(await this.control.readPauses(), now)].map(([kind, entry]) => ({ kind: kind === ALL_KINDS ? null : kind, since: entry.at, until: entry.until }));
  }
}

/** The pauses still in force at `now` (ended ones are dropped when the document is next written). */
function live(pauses: Map<string, PauseEntry>, now: number): Map<string, PauseEntry> {
  return new Map([...pauses].filter(([, e]) => e.until === null || e.until.getTime() > now));
}
