/**
 * oncetask: idempotent background tasks stored in Google Cloud Firestore.
 * @packageDocumentation
 */
export { defineTask, isTaskDefinition } from './task-definition.js';
export type { TaskDefinition, TaskDefinitionInput, TaskData, TaskInput } from './task-definition.js';
export { OnceTaskManager } from './manager.js';
export { memoryBackend } from './store/backend.js';
export type { StorageBackend } from './store/backend.js';
export type {
  OnceTaskManagerOptions,
  CreateOptions,
  CreateResult,
  CreateOutcome,
  CreateManyOptions,
  CreateManyResult,
  StopOptions,
  WaitForOptions,
  ListOptions,
  ListPage,
  QueueDepth,
  PauseInfo,
  PauseOptions,
  ResumeOptions,
} from './manager.js';
export type { SetProgressOptions } from './worker/progress.js';
export type {
  TaskContext,
  RunningTask,
  TaskHandler,
  GroupContext,
  GroupHandler,
  CancelHandler,
  HandlerOptions,
  GroupHandlerOptions,
} from './handlers.js';
export type { TaskInfo, TaskStatus, TaskErrorRecord, TaskLease, TaskOccurrence, TaskProgress } from './task-document.js';
export { MAX_PRIORITY, PRIORITY_STEP_MS } from './priority.js';
export { MAX_LABELS } from './labels.js';
export type {
  RecurrenceOptions,
  RRuleRecurrenceOptions,
  CronRecurrenceOptions,
  EveryRecurrenceOptions,
  CommonRecurrenceOptions,
  CatchUp,
  Overlap,
  StoredRecurrence,
} from './schedule/recurrence.js';
export type { LastSpawn, ListSchedulesOptions, RunScheduleNowResult, ScheduleInfo, UpsertScheduleOutcome, UpsertScheduleResult } from './admin/schedules.js';
export { TASK_STATUSES, TERMINAL_STATUSES, OPEN_STATUSES, MAX_RECORDED_ERRORS } from './task-document.js';
export { exponentialBackoff, fixedDelay, noRetry } from './retry.js';
export type { RetryPolicy, ExponentialBackoffOptions, FixedDelayOptions } from './retry.js';
export type { OnceTaskLogger } from './logger.js';
export type { OperationStats } from './store/op-stats.js';
export {
  OnceTaskError,
  InvalidPayloadError,
  InvalidOptionsError,
  InvalidIdError,
  TaskNotFoundError,
  InvalidStateError,
  LeaseLostError,
  NonRetryableError,
  HandlerTimeoutError,
  HandlerAlreadyRegisteredError,
  UnencodableValueError,
  MalformedTaskError,
  LeaseExpiredError,
  ShutdownError,
  TaskCancelledError,
  EnvironmentMismatchError,
  BackendTimeoutError,
  HookTimeoutError,
  WaitTimeoutError,
} from './errors.js';
export type { Clock } from './clock.js';
export type { OnceTaskErrorCode, ValidationIssue } from './errors.js';
export type { TaskHooks, TaskOutcome, TaskFailureInfo } from './worker/hooks.js';
export type { DrainOptions, DrainResult } from './worker/drain.js';
