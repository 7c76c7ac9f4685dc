/**
 * The CycleCloud operations the scaler uses. The undici client implements it; unit tests fake it.
 * Every call takes an optional `abortSignal`.
 */
import type { ClusterStatus, NodeCreationRequest, NodeCreationResult, NodeList, NodeManagementRequest, NodeManagementResult, OperationStatus } from './schemas.ts';

export interface CallOptions {
  abortSignal?: AbortSignal;
}

export interface GetClusterStatusOptions extends CallOptions {
  /** Include node records (`?nodes=true`). Default false. */
  nodes?: boolean;
}

export type ListNodesOptions = CallOptions & ({ operationId?: string; requestId?: never } | { requestId?: string; operationId?: never });

export interface ScaleNodearrayOptions extends CallOptions {
  totalNodeCount?: number;
  totalCoreCount?: number;
}

export interface CycleCloudApi {
  getClusterStatus(cluster: string, options?: GetClusterStatusOptions): Promise<ClusterStatus>;
  /**
   * `GET /clusters/{c}/nodes`, optionally filtered by operation or request id.
   * An unknown request id yields `CycleCloudError` with code `CC_NOT_FOUND`.
   */
  listNodes(cluster: string, options?: ListNodesOptions): Promise<NodeList>;
  /** Never retried by the client: reconcile by request id instead. */
  createNodes(cluster: string, request: NodeCreationRequest, options?: CallOptions): Promise<NodeCreationResult>;
  terminateNodes(cluster: string, request: NodeManagementRequest, options?: CallOptions): Promise<NodeManagementResult>;
  deallocateNodes(cluster: string, request: NodeManagementRequest, options?: CallOptions): Promise<NodeManagementResult>;
  shutdownNodes(cluster: string, request: NodeManagementRequest, options?: CallOptions): Promise<NodeManagementResult>;
  startNodes(cluster: string, request: NodeManagementRequest, options?: CallOptions): Promise<NodeManagementResult>;
  removeNodes(cluster: string, request: NodeManagementRequest, options?: CallOptions): Promise<NodeManagementResult>;
  scaleNodearray(cluster: string, nodearray: string, options: ScaleNodearrayOptions): Promise<NodeCreationResult>;
  getOperation(operationId: string, options?: CallOptions): Promise<OperationStatus>;
  /** `GET /operations/?request_id=`: the operation, or null when CycleCloud has none under that id. */
  findOperationByRequestId(requestId: string, options?: CallOptions): Promise<(OperationStatus & { operationId?: string }) | null>;
}

/** Stable error codes (STYLE: one error family, `code`, `cause`). */
export type CycleCloudErrorCode =
  | 'CC_AUTH'
  | 'CC_NOT_FOUND'
  | 'CC_CONFLICT'
  | 'CC_BAD_REQUEST'
  | 'CC_THROTTLED'
  | 'CC_UNAVAILABLE'
  | 'CC_BAD_RESPONSE'
  | 'CC_TIMEOUT'
  | 'CC_NETWORK';
