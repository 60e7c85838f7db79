package controllers

import (
	"context"
	"fmt"
	"k8s.io/utils/ptr"
	"strconv"
	"strings"
	"time"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	ragv1 "github.com/ragstack/rag-operator/api/v1alpha1"
)

// unreachableBackoff is how soon an unreachable Ollama or Qdrant is asked again: a condition and
// a calm retry, never a hot loop.
const unreachableBackoff = 30 * time.Second

// reconcileCollection creates the Qdrant collection when absent and updates its mutable
// settings in place. A collection whose size or distance differs is never touched.
func (r *RagApplianceReconciler) reconcileCollection(ctx context.Context, s *scope) (subResult, error) {
	ra := s.ra
	if s.qdrant.Status != "True" {
		setCondition(ra, ragv1.ConditionCollectionReady, falseState(ragv1.ReasonWaitingForQdrant, "waiting for Qdrant to be ready"))
		return subResult{}, nil
	}
	if r.External == nil {
		setCondition(ra, ragv1.ConditionCollectionReady, unknownState(ragv1.ReasonUnreachable, "the operator runs without access to Qdrant's API"))
		return subResult{}, nil
	}
	qc, err := r.External.Qdrant(ra, s.qdrantKey)
	if err != nil {
		setCondition(ra, ragv1.ConditionCollectionReady, falseState(ragv1.ReasonUnreachable, err.Error()))
		return subResult{requeueAfter: unreachableBackoff}, nil
	}
	var backlog *float64
	if depth, ok := s.serverMetrics.queueDepth(); ok {
		backlog = &depth
	}
	st, info, err := ensureCollection(ctx, qc, desiredCollection(ra), backlog)
	if err != nil {
		log.FromContext(ctx).Info("Qdrant unreachable", "error", err.Error())
		setCondition(ra, ragv1.ConditionCollectionReady, falseState(ragv1.ReasonUnreachable, "Qdrant: "+err.Error()))
		return subResult{requeueAfter: unreachableBackoff}, nil
	}
	if info != nil {
		ra.Status.Collection = collectionStatus(ra.Spec.Qdrant.Collection.Name, info)
	}
	if st.Reason == ragv1.ReasonCollectionConflict {
		r.event(ra, corev1.EventTypeWarning, st.Reason, "Verify", st.Message)
	}
	setCondition(ra, ragv1.ConditionCollectionReady, st)
	return subResult{}, nil
}

// desiredCollection is the declared collection with its defaults resolved: one shard per Qdrant
// peer unless declared (Qdrant's own default in distributed mode).
func desiredCollection(ra *ragv1.RagAppliance) ragv1.CollectionSpec {
	spec := *ra.Spec.Qdrant.Collection.DeepCopy()
	if spec.ShardNumber == nil {
		spec.ShardNumber = ptr.To(qdrantReplicas(ra))
	}
	spec.ReplicationFactor = max(spec.ReplicationFactor, 1)
	spec.WriteConsistencyFactor = max(spec.WriteConsistencyFactor, 1)
	return spec
}

// orOne reads an optional Qdrant factor whose absence means 1 (Qdrant's default).
func orOne(v uint32) uint32 { return max(v, 1) }

// bulkWindow decides the indexing threshold to apply now: 0 while a bulk-ingest window is
// open, the declared value otherwise. The window opens when the backlog reaches
// bulkIngestThreshold and stays open until the backlog is empty. Whether it is open is read
// back from Qdrant (a threshold of 0 where the spec declares another value), so the operator
// keeps no state: restarted mid-window, it closes the window on the first pass that sees the
// backlog drained. An unknown backlog (the server's metrics unreadable) changes nothing.
func bulkWindow(spec ragv1.OptimizersSpec, live uint64, backlog *float64) (threshold uint64, open bool) {
	declared := uint64(spec.IndexingThreshold)
	if spec.BulkIngestThreshold <= 0 || declared == 0 {
		return declared, false
	}
	isOpen := live == 0
	switch {
	case backlog == nil:
		open = isOpen
	case *backlog >= float64(spec.BulkIngestThreshold):
		open = true
	default:
		open = isOpen && *backlog > 0
	}
	if open {
		return 0, true
	}
	return declared, false
}

// ensureCollection is the collection's reconcile against Qdrant's API; err means Qdrant did
// not answer (a conflict is a state, not an error). spec comes from desiredCollection;
// backlog is the RAG server's queued documents (nil: unknown), for the bulk-ingest window.
func ensureCollection(ctx context.Context, qc QdrantAPI, spec ragv1.CollectionSpec, backlog *float64) (state, *qdrant.CollectionInfo, error) {
	info, err := qc.GetCollectionInfo(ctx, spec.Name)
	if status.Code(err) == codes.NotFound {
		if err := qc.CreateCollection(ctx, createCollectionRequest(spec)); err != nil {
			return state{}, nil, fmt.Errorf("create collection %s: %w", spec.Name, err)
		}
		info, err = qc.GetCollectionInfo(ctx, spec.Name)
		if err != nil {
			return state{}, nil, err
		}
		return trueState(ragv1.ReasonCollectionConfigured, "created collection "+spec.Name), info, nil
	}
	if err != nil {
		return state{}, nil, err
	}
	params := info.GetConfig().GetParams().GetVectorsConfig().GetParams()
	if params == nil {
		return falseState(ragv1.ReasonCollectionConflict, fmt.Sprintf("existing collection %s uses named or sparse vectors; spec.qdrant.collection declares one unnamed vector of %d: left untouched", spec.Name, spec.VectorSize)), info, nil
	}
	if int64(params.GetSize()) != int64(spec.VectorSize) || params.GetDistance().String() != string(spec.Distance) {
		return falseState(ragv1.ReasonCollectionConflict, fmt.Sprintf(
			"existing collection %s has vectorSize %d and distance %s; spec.qdrant.collection declares vectorSize %d and distance %s: left untouched (declare another collection name)",
			spec.Name, params.GetSize(), params.GetDistance(), spec.VectorSize, spec.Distance)), info, nil
	}
	threshold, windowOpen := bulkWindow(spec.Optimizers, info.GetConfig().GetOptimizerConfig().GetIndexingThreshold(), backlog)
	spec.Optimizers.IndexingThreshold = int64(threshold)
	window := ""
	if windowOpen {
		queued := "an unknown number of"
		if backlog != nil {
			queued = strconv.FormatFloat(*backlog, 'f', 0, 64)
		}
		window = "; bulk-ingest window: HNSW indexing deferred while " + queued + " documents are queued"
	}
	if update, changed := collectionUpdate(spec, info.GetConfig()); len(changed) > 0 {
		if err := qc.UpdateCollection(ctx, update); err != nil {
			return state{}, nil, fmt.Errorf("update collection %s (%s): %w", spec.Name, strings.Join(changed, ", "), err)
		}
		if info, err = qc.GetCollectionInfo(ctx, spec.Name); err != nil {
			return state{}, nil, err
		}
		return shardingState(spec, info, trueState(ragv1.ReasonCollectionConfigured, "updated collection "+spec.Name+": "+strings.Join(changed, ", ")+window)), info, nil
	}
	return shardingState(spec, info, trueState(ragv1.ReasonCollectionConfigured, "collection "+spec.Name+" matches the spec"+window)), info, nil
}

// shardingState reports a shard number Qdrant fixed at creation that differs from the spec:
// the collection works as it is (still True), and the reason says what differs and why it
// stays. Reshard by creating a collection under a new name.
func shardingState(spec ragv1.CollectionSpec, info *qdrant.CollectionInfo, ok state) state {
	have := orOne(info.GetConfig().GetParams().GetShardNumber())
	if spec.ShardNumber == nil || have == uint32(*spec.ShardNumber) {
		return ok
	}
	return trueState(ragv1.ReasonShardingDiffers, fmt.Sprintf(
		"collection %s has %d shards; spec.qdrant.collection.shardNumber (or one per Qdrant replica) says %d: Qdrant fixes the shard number at creation, so the collection is used as it is (declare another collection name to reshard)",
		spec.Name, have, *spec.ShardNumber))
}

func qdrantDistance(d ragv1.Distance) qdrant.Distance {
	return qdrant.Distance(qdrant.Distance_value[string(d)])
}

func createCollectionRequest(spec ragv1.CollectionSpec) *qdrant.CreateCollection {
	return &qdrant.CreateCollection{
		CollectionName: spec.Name,
		VectorsConfig: qdrant.NewVectorsConfig(&qdrant.VectorParams{
			Size: uint64(spec.VectorSize), Distance: qdrantDistance(spec.Distance), OnDisk: qdrant.PtrOf(spec.OnDisk),
		}),
		HnswConfig: &qdrant.HnswConfigDiff{M: qdrant.PtrOf(uint64(spec.HNSW.M)), EfConstruct: qdrant.PtrOf(uint64(spec.HNSW.EfConstruct))},
		OptimizersConfig: &qdrant.OptimizersConfigDiff{
			IndexingThreshold:    qdrant.PtrOf(uint64(spec.Optimizers.IndexingThreshold)),
			DefaultSegmentNumber: qdrant.PtrOf(uint64(spec.Optimizers.DefaultSegmentNumber)),
			MemmapThreshold:      qdrant.PtrOf(uint64(spec.Optimizers.MemmapThreshold)),
		},
		QuantizationConfig:     quantizationConfig(spec.Quantization),
		ShardNumber:            optionalUint32(spec.ShardNumber),
		ReplicationFactor:      qdrant.PtrOf(uint32(max(spec.ReplicationFactor, 1))),
		WriteConsistencyFactor: qdrant.PtrOf(uint32(max(spec.WriteConsistencyFactor, 1))),
	}
}

func optionalUint32(v *int32) *uint32 {
	if v == nil {
		return nil
	}
	return qdrant.PtrOf(uint32(*v))
}

func quantizationConfig(q ragv1.QuantizationSpec) *qdrant.QuantizationConfig {
	if q.Type != ragv1.QuantizationScalar {
		return nil
	}
	return qdrant.NewQuantizationScalar(&qdrant.ScalarQuantization{Type: qdrant.QuantizationType_Int8, AlwaysRam: qdrant.PtrOf(q.AlwaysRAM)})
}

// collectionUpdate is the in-place update from the applied config to the spec: only what
// differs is sent. HNSW and optimizers merge on Qdrant's side; quantization is replaced whole
// (or disabled).
func collectionUpdate(spec ragv1.CollectionSpec, cfg *qdrant.CollectionConfig) (*qdrant.UpdateCollection, []string) {
	up := &qdrant.UpdateCollection{CollectionName: spec.Name}
	var changed []string
	hnsw := cfg.GetHnswConfig()
	diff := &qdrant.HnswConfigDiff{}
	if hnsw.GetM() != uint64(spec.HNSW.M) {
		diff.M = qdrant.PtrOf(uint64(spec.HNSW.M))
		changed = append(changed, fmt.Sprintf("hnsw.m %d→%d", hnsw.GetM(), spec.HNSW.M))
	}
	if hnsw.GetEfConstruct() != uint64(spec.HNSW.EfConstruct) {
		diff.EfConstruct = qdrant.PtrOf(uint64(spec.HNSW.EfConstruct))
		changed = append(changed, fmt.Sprintf("hnsw.efConstruct %d→%d", hnsw.GetEfConstruct(), spec.HNSW.EfConstruct))
	}
	if diff.M != nil || diff.EfConstruct != nil {
		up.HnswConfig = diff
	}
	opt := cfg.GetOptimizerConfig()
	od := &qdrant.OptimizersConfigDiff{}
	if opt.GetIndexingThreshold() != uint64(spec.Optimizers.IndexingThreshold) {
		od.IndexingThreshold = qdrant.PtrOf(uint64(spec.Optimizers.IndexingThreshold))
		changed = append(changed, fmt.Sprintf("indexingThreshold %d→%d", opt.GetIndexingThreshold(), spec.Optimizers.IndexingThreshold))
	}
	if opt.GetDefaultSegmentNumber() != uint64(spec.Optimizers.DefaultSegmentNumber) {
		od.DefaultSegmentNumber = qdrant.PtrOf(uint64(spec.Optimizers.DefaultSegmentNumber))
		changed = append(changed, fmt.Sprintf("defaultSegmentNumber %d→%d", opt.GetDefaultSegmentNumber(), spec.Optimizers.DefaultSegmentNumber))
	}
	if opt.GetMemmapThreshold() != uint64(spec.Optimizers.MemmapThreshold) {
		od.MemmapThreshold = qdrant.PtrOf(uint64(spec.Optimizers.MemmapThreshold))
		changed = append(changed, fmt.Sprintf("memmapThreshold %d→%d", opt.GetMemmapThreshold(), spec.Optimizers.MemmapThreshold))
	}
	if len(changed) > 0 && (od.IndexingThreshold != nil || od.DefaultSegmentNumber != nil || od.MemmapThreshold != nil) {
		up.OptimizersConfig = od
	}
	if have, want := quantizationName(cfg.GetQuantizationConfig()), quantizationName(quantizationConfig(spec.Quantization)); have != want {
		changed = append(changed, "quantization "+have+"→"+want)
		if q := quantizationConfig(spec.Quantization); q != nil {
			up.QuantizationConfig = qdrant.NewQuantizationDiffScalar(q.GetScalar())
		} else {
			up.QuantizationConfig = qdrant.NewQuantizationDiffDisabled()
		}
	}
	params := &qdrant.CollectionParamsDiff{}
	if have, want := orOne(cfg.GetParams().GetReplicationFactor()), uint32(max(spec.ReplicationFactor, 1)); have != want {
		params.ReplicationFactor = qdrant.PtrOf(want)
		changed = append(changed, fmt.Sprintf("replicationFactor %d→%d", have, want))
	}
	if have, want := orOne(cfg.GetParams().GetWriteConsistencyFactor()), uint32(max(spec.WriteConsistencyFactor, 1)); have != want {
		params.WriteConsistencyFactor = qdrant.PtrOf(want)
		changed = append(changed, fmt.Sprintf("writeConsistencyFactor %d→%d", have, want))
	}
	if params.ReplicationFactor != nil || params.WriteConsistencyFactor != nil {
		up.Params = params
	}
	if onDisk := cfg.GetParams().GetVectorsConfig().GetParams().GetOnDisk(); onDisk != spec.OnDisk {
		changed = append(changed, fmt.Sprintf("onDisk %v→%v", onDisk, spec.OnDisk))
		up.VectorsConfig = qdrant.NewVectorsConfigDiff(&qdrant.VectorParamsDiff{OnDisk: qdrant.PtrOf(spec.OnDisk)})
	}
	return up, changed
}

func quantizationName(q *qdrant.QuantizationConfig) string {
	switch {
	case q == nil:
		return "none"
	case q.GetScalar() != nil:
		name := "scalar-" + strings.ToLower(q.GetScalar().GetType().String())
		if q.GetScalar().GetAlwaysRam() {
			name += "-always-ram"
		}
		return name
	case q.GetProduct() != nil:
		return "product"
	case q.GetBinary() != nil:
		return "binary"
	}
	return "unknown"
}

func collectionStatus(name string, info *qdrant.CollectionInfo) *ragv1.CollectionStatus {
	cfg := info.GetConfig()
	params := cfg.GetParams().GetVectorsConfig().GetParams()
	return &ragv1.CollectionStatus{
		Name:                   name,
		Status:                 info.GetStatus().String(),
		VectorSize:             int64(params.GetSize()),
		Distance:               params.GetDistance().String(),
		OnDisk:                 params.GetOnDisk(),
		PointsCount:            int64(info.GetPointsCount()),
		HNSWM:                  int64(cfg.GetHnswConfig().GetM()),
		HNSWEfConstruct:        int64(cfg.GetHnswConfig().GetEfConstruct()),
		Quantization:           quantizationName(cfg.GetQuantizationConfig()),
		IndexingThreshold:      int64(cfg.GetOptimizerConfig().GetIndexingThreshold()),
		DefaultSegmentNumber:   int64(cfg.GetOptimizerConfig().GetDefaultSegmentNumber()),
		MemmapThreshold:        int64(cfg.GetOptimizerConfig().GetMemmapThreshold()),
		ShardNumber:            int64(orOne(cfg.GetParams().GetShardNumber())),
		ReplicationFactor:      int64(orOne(cfg.GetParams().GetReplicationFactor())),
		WriteConsistencyFactor: int64(orOne(cfg.GetParams().GetWriteConsistencyFactor())),
	}
}
