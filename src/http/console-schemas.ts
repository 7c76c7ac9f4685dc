/**
 * Answers of the read routes the operator console uses (and any other reader may): the request
 * list, a request's timeline, a cluster's capacity with what is in flight and backing off, trends
 * and counters. Like `schemas.ts`, they feed the OpenAPI document and shape the answers.
 */
import { z } from 'zod';
import { RequestState } from '../ledger/schemas.ts';
import { BucketStatus } from './schemas.ts';

export const RequestSummary = z.object({
  requestId: z.string(),
  cluster: z.string(),
  kind: z.enum(['scale', 'terminate', 'start']),
  state: RequestState,
  requested: z.number().int().meta({ description: 'Nodes requested over all demands' }),
  ready: z.number().int().meta({ description: 'Nodes ready over all demands' }),
  demands: z.number().int(),
  jobIds: z.array(z.string()),
  reason: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
  finalAt: z.string().nullable(),
  leaseExpiresAt: z.string().nullable().meta({ description: 'When the lease passes unless renewed; null without a lease or once released' }),
  released: z.string().nullable().meta({ description: 'lease expired, released or max lifetime; null when the scaler did not shut its nodes down' }),
  spot: z.number().int().meta({ description: 'Nodes created in spot buckets' }),
  evicted: z.number().int().meta({ description: 'Nodes Azure evicted' }),
});

/** `GET /api/scale-requests`: a page of requests, newest first. */
export const RequestList = z.object({
  items: z.array(RequestSummary),
  nextCursor: z.string().nullable().meta({ description: 'Pass as `cursor` for the next, older page; null on the last page' }),
});

/** `GET /api/scale-requests/{requestId}/timeline`. */
export const RequestTimeline = z.object({
  requestId: z.string(),
  state: RequestState,
  createdAt: z.string(),
  transitions: z.array(z.object({ state: RequestState, ready: z.number().int(), at: z.string() })),
  attempts: z.array(
    z.object({
      cycleCloudRequestId: z.string(),
      state: z.enum(['intent', 'accepted', 'unknown', 'failed']),
      at: z.string(),
      nodes: z.number().int().meta({ description: 'Nodes the create asked for' }),
    }),
  ),
  compensations: z.array(z.object({ demand: z.number().int(), placementGroupId: z.string().nullable(), nodes: z.number().int(), reason: z.string(), at: z.string() })),
});

const BucketCapacity = BucketStatus.omit({ placementGroups: true }).extend({
  quotaCount: z.number().int(),
  gpuCount: z.number().int().meta({ description: "CycleCloud's virtualMachine.gpuCount; 0 when it does not say (ccscale slurm conf writes Gres from it)" }),
  inFlight: z.number().int().meta({ description: 'Nodes the scaler asked for since the snapshot was taken' }),
  placementGroups: z.array(z.object({ name: z.string(), activeCount: z.number().int(), inFlight: z.number().int() })),
  backoff: z.object({ until: z.string(), secondsLeft: z.number().int(), reason: z.string() }).nullable().meta({ description: 'Capacity-failure backoff in force, or null' }),
});

/** `GET /api/clusters/{cluster}/capacity`. */
export const ClusterCapacity = z.object({
  cluster: z.string(),
  takenAt: z.string(),
  ageSeconds: z.number(),
  stale: z.boolean(),
  paused: z.boolean(),
  nodearrays: z.array(z.object({ name: z.string(), maxCount: z.number().int(), buckets: z.array(BucketCapacity) })),
});
export type ClusterCapacity = z.infer<typeof ClusterCapacity>;

const TrendBucket = z.object({
  atMs: z.number().int(),
  requests: z.number().int(),
  fulfilled: z.number().int(),
  p50Seconds: z.number().nullable(),
  p95Seconds: z.number().nullable(),
  nodesReady: z.number().int(),
});

/** `GET /api/trends`. */
export const TrendsResponse = z.object({
  fromMs: z.number().int(),
  toMs: z.number().int(),
  bucketSeconds: z.number(),
  buckets: z.array(TrendBucket),
  totals: z.object({
    requests: z.number().int(),
    fulfilled: z.number().int(),
    p50Seconds: z.number().nullable(),
    p95Seconds: z.number().nullable(),
    nodesReady: z.number().int(),
  }),
});

/** `GET /api/counters`. */
export const Counters = z.object({ counters: z.record(z.string(), z.number()) });
