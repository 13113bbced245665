export { CkClient, type CkClientOptions, DEFAULT_CONFIG } from './client.js';
export { CkError, type CkErrorCode } from './errors.js';
export type { TokenSource } from './http.js';
export { type Connection, Presence, type PresenceEvents, type PresenceOptions, type SetOptions } from './presence.js';
export type { QueueStorage } from './queue.js';
export { type SseEvent, SseParser } from './sse.js';
export { type SubscribeOptions, Subscription, type SubscriptionEvents, type SubscriptionStatus } from './subscribe.js';
export type * from './types.js';
