package qdrantdouble

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Defaults a fresh Qdrant gives a collection when the create request leaves a block out. They are
// the ones in qdrant/qdrant config/config.yaml (storage.hnsw_index, storage.optimizers, storage.wal,
// storage.collection, storage.on_disk_payload) plus lib/collection/src/config.rs
// (default_wal_retain_closed = 1, single node → shard_number 1).
func defaultHnsw() *qdrant.HnswConfigDiff {
	return &qdrant.HnswConfigDiff{
		M:                  proto.Uint64(16),
		EfConstruct:        proto.Uint64(100),
		FullScanThreshold:  proto.Uint64(10000),
		MaxIndexingThreads: proto.Uint64(0),
		OnDisk:             proto.Bool(false),
	}
}

func defaultWal() *qdrant.WalConfigDiff {
	return &qdrant.WalConfigDiff{
		WalCapacityMb:    proto.Uint64(32),
		WalSegmentsAhead: proto.Uint64(0),
		WalRetainClosed:  proto.Uint64(1),
	}
}

// optimizerConfig is Qdrant's OptimizersConfig (lib/collection/src/optimizers_builder.rs): the
// stored form, fully resolved, as opposed to the "diff" that requests carry.
type optimizerConfig struct {
	deletedThreshold       float64
	vacuumMinVectorNumber  uint64
	defaultSegmentNumber   uint64
	maxSegmentSize         *uint64
	memmapThreshold        *uint64
	indexingThreshold      *uint64
	flushIntervalSec       uint64
	maxOptimizationThreads *uint64 // nil = auto
	preventUnoptimized     *bool
}

func defaultOptimizers() optimizerConfig {
	return optimizerConfig{
		deletedThreshold:      0.2,
		vacuumMinVectorNumber: 1000,
		defaultSegmentNumber:  0,
		indexingThreshold:     proto.Uint64(10000),
		flushIntervalSec:      5,
	}
}

// merge applies a diff the way OptimizersConfigDiff::update does: fields present in the diff win.
// max_optimization_threads comes in two spellings; the deprecated plain number takes precedence
// over the message, whose `Setting: Auto` means "no limit" (lib/collection/src/operations/
// conversions.rs, TryFrom<OptimizersConfigDiff>).
func (o *optimizerConfig) merge(d *qdrant.OptimizersConfigDiff) {
	if d == nil {
		return
	}
	if d.DeletedThreshold != nil {
		o.deletedThreshold = *d.DeletedThreshold
	}
	if d.VacuumMinVectorNumber != nil {
		o.vacuumMinVectorNumber = *d.VacuumMinVectorNumber
	}
	if d.DefaultSegmentNumber != nil {
		o.defaultSegmentNumber = *d.DefaultSegmentNumber
	}
	if d.MaxSegmentSize != nil {
		o.maxSegmentSize = proto.Uint64(*d.MaxSegmentSize)
	}
	if d.MemmapThreshold != nil {
		o.memmapThreshold = proto.Uint64(*d.MemmapThreshold)
	}
	if d.IndexingThreshold != nil {
		o.indexingThreshold = proto.Uint64(*d.IndexingThreshold)
	}
	if d.FlushIntervalSec != nil {
		o.flushIntervalSec = *d.FlushIntervalSec
	}
	switch {
	case d.DeprecatedMaxOptimizationThreads != nil:
		o.maxOptimizationThreads = proto.Uint64(*d.DeprecatedMaxOptimizationThreads)
	case d.MaxOptimizationThreads != nil:
		switch v := d.MaxOptimizationThreads.GetVariant().(type) {
		case *qdrant.MaxOptimizationThreads_Value:
			o.maxOptimizationThreads = proto.Uint64(v.Value)
		case *qdrant.MaxOptimizationThreads_Setting_:
			o.maxOptimizationThreads = nil
		}
	}
	if d.PreventUnoptimized != nil {
		o.preventUnoptimized = proto.Bool(*d.PreventUnoptimized)
	}
}

// report renders the config as Qdrant's CollectionInfo does (lib/collection/src/operations/
// conversions.rs, From<CollectionInfo>): required fields always present, optional ones only when
// set, and the thread limit in both spellings.
func (o optimizerConfig) report() *qdrant.OptimizersConfigDiff {
	d := &qdrant.OptimizersConfigDiff{
		DeletedThreshold:      proto.Float64(o.deletedThreshold),
		VacuumMinVectorNumber: proto.Uint64(o.vacuumMinVectorNumber),
		DefaultSegmentNumber:  proto.Uint64(o.defaultSegmentNumber),
		MaxSegmentSize:        copyU64(o.maxSegmentSize),
		MemmapThreshold:       copyU64(o.memmapThreshold),
		IndexingThreshold:     copyU64(o.indexingThreshold),
		FlushIntervalSec:      proto.Uint64(o.flushIntervalSec),
		PreventUnoptimized:    copyBool(o.preventUnoptimized),
	}
	if o.maxOptimizationThreads == nil {
		d.MaxOptimizationThreads = &qdrant.MaxOptimizationThreads{Variant: &qdrant.MaxOptimizationThreads_Setting_{Setting: qdrant.MaxOptimizationThreads_Auto}}
	} else {
		d.DeprecatedMaxOptimizationThreads = proto.Uint64(*o.maxOptimizationThreads)
		d.MaxOptimizationThreads = &qdrant.MaxOptimizationThreads{Variant: &qdrant.MaxOptimizationThreads_Value{Value: *o.maxOptimizationThreads}}
	}
	return d
}

// collectionConfig is what a collection keeps of its configuration; everything but the optimizer
// block is held directly in the form CollectionInfo reports it.
type collectionConfig struct {
	params       *qdrant.CollectionParams
	hnsw         *qdrant.HnswConfigDiff
	optimizers   optimizerConfig
	wal          *qdrant.WalConfigDiff
	quantization *qdrant.QuantizationConfig // nil = none
	strictMode   *qdrant.StrictModeConfig
	metadata     map[string]*qdrant.Value
}

func (c *collectionConfig) clone() *collectionConfig {
	out := *c
	out.params = proto.Clone(c.params).(*qdrant.CollectionParams)
	out.hnsw = proto.Clone(c.hnsw).(*qdrant.HnswConfigDiff)
	out.wal = proto.Clone(c.wal).(*qdrant.WalConfigDiff)
	if c.quantization != nil {
		out.quantization = proto.Clone(c.quantization).(*qdrant.QuantizationConfig)
	}
	if c.strictMode != nil {
		out.strictMode = proto.Clone(c.strictMode).(*qdrant.StrictModeConfig)
	}
	out.metadata = cloneValueMap(c.metadata)
	return &out
}

func (c *collectionConfig) report() *qdrant.CollectionConfig {
	cc := c.clone()
	return &qdrant.CollectionConfig{
		Params:             cc.params,
		HnswConfig:         cc.hnsw,
		OptimizerConfig:    c.optimizers.report(),
		WalConfig:          cc.wal,
		QuantizationConfig: cc.quantization,
		StrictModeConfig:   cc.strictMode,
		Metadata:           cc.metadata,
	}
}

// vector returns the parameters of the single unnamed dense vector, nil if the collection has none.
func (c *collectionConfig) vector() *qdrant.VectorParams {
	return c.params.GetVectorsConfig().GetParams()
}

// configFromCreate builds the stored configuration from a create request: defaults overlaid with
// what the request sets, validated as Qdrant's request conversion does
// (lib/storage/src/content_manager/conversions.rs, TryFrom<grpc::CreateCollection>).
func configFromCreate(req *qdrant.CreateCollection) (*collectionConfig, error) {
	if err := validateCollectionName(req.GetCollectionName()); err != nil {
		return nil, err
	}
	// Sharding fields: `range(min = 1)` in lib/api/build.rs, so a zero is refused by the request
	// validation before the table of contents sees it (its own "`shard_number` cannot be 0"
	// BadInput, kept in createCollection, is then unreachable over gRPC, as in Qdrant).
	if err := validateMinOne(
		field{"shard_number", req.ShardNumber},
		field{"replication_factor", req.ReplicationFactor},
		field{"write_consistency_factor", req.WriteConsistencyFactor},
	); err != nil {
		return nil, err
	}
	vectors := &qdrant.VectorsConfig{Config: &qdrant.VectorsConfig_ParamsMap{ParamsMap: &qdrant.VectorParamsMap{}}}
	switch vc := req.GetVectorsConfig().GetConfig().(type) {
	case *qdrant.VectorsConfig_Params:
		p, err := normalizeVectorParams(vc.Params)
		if err != nil {
			return nil, err
		}
		vectors.Config = &qdrant.VectorsConfig_Params{Params: p}
	case *qdrant.VectorsConfig_ParamsMap:
		if len(vc.ParamsMap.GetMap()) > 0 {
			return nil, errUnimplemented("named vectors (VectorsConfig.ParamsMap)")
		}
	}
	if len(req.GetSparseVectorsConfig().GetMap()) > 0 {
		return nil, errUnimplemented("sparse vectors")
	}
	if req.GetShardingMethod() == qdrant.ShardingMethod_Custom {
		return nil, errUnimplemented("custom sharding")
	}
	if err := validateQuantization(req.GetQuantizationConfig()); err != nil {
		return nil, err
	}

	cfg := &collectionConfig{
		params: &qdrant.CollectionParams{
			ShardNumber:            valueOr(req.ShardNumber, 1),
			OnDiskPayload:          valueOr(req.OnDiskPayload, true),
			VectorsConfig:          vectors,
			ReplicationFactor:      proto.Uint32(valueOr(req.ReplicationFactor, 1)),
			WriteConsistencyFactor: proto.Uint32(valueOr(req.WriteConsistencyFactor, 1)),
			ShardingMethod:         req.ShardingMethod,
		},
		hnsw:       defaultHnsw(),
		optimizers: defaultOptimizers(),
		wal:        defaultWal(),
		// No strict-mode block unless the request sets one: the default comes from the service
		// config's storage.collection.strict_mode, commented out in the stock config.yaml.
		metadata: cloneValueMap(req.GetMetadata()),
	}
	if req.HnswConfig != nil {
		proto.Merge(cfg.hnsw, req.HnswConfig)
	}
	cfg.optimizers.merge(req.OptimizersConfig)
	if req.WalConfig != nil {
		proto.Merge(cfg.wal, req.WalConfig)
	}
	if req.QuantizationConfig != nil {
		cfg.quantization = proto.Clone(req.QuantizationConfig).(*qdrant.QuantizationConfig)
	}
	if req.StrictModeConfig != nil {
		cfg.strictMode = proto.Clone(req.StrictModeConfig).(*qdrant.StrictModeConfig)
	}
	if len(cfg.metadata) == 0 {
		cfg.metadata = nil
	}
	return cfg, nil
}

// field is an optional request field and its path as Qdrant's validation names it.
type field struct {
	path  string
	value *uint32
}

// validateMinOne is the validator crate's `range(min = 1)` on optional fields: an absent field
// passes, a zero is "value 0 invalid, must be 1 or larger" (lib/collection/src/operations/
// validation.rs, describe_error), every failing field listed in one message.
func validateMinOne(fields ...field) error {
	var bad []string
	for _, f := range fields {
		if f.value != nil && *f.value < 1 {
			bad = append(bad, fmt.Sprintf("%s: value %d invalid, must be 1 or larger", f.path, *f.value))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return status.Errorf(codes.InvalidArgument, "Validation error in body: [%s]", strings.Join(bad, "; "))
}

// validateCollectionName approximates Qdrant's collection-name validation (length 1..=255, no
// path separators or characters invalid in file names); the code is Qdrant's, the wording not.
func validateCollectionName(name string) error {
	if len(name) == 0 || len(name) > 255 {
		return errValidation("collection_name", "length must be between 1 and 255")
	}
	if i := strings.IndexAny(name, "<>:\"/\\|?*\x00"); i >= 0 {
		return errValidation("collection_name", fmt.Sprintf("collection name cannot contain %q char", name[i]))
	}
	return nil
}

// normalizeVectorParams validates and stores VectorParams as Qdrant reports them back
// (lib/collection/src/operations/conversions.rs, TryFrom<grpc::VectorParams>): datatype Default is
// "not set".
func normalizeVectorParams(p *qdrant.VectorParams) (*qdrant.VectorParams, error) {
	if p.GetSize() == 0 {
		return nil, errInvalid("VectorParams size must be greater than zero")
	}
	switch p.GetDistance() {
	case qdrant.Distance_Cosine, qdrant.Distance_Euclid, qdrant.Distance_Dot, qdrant.Distance_Manhattan:
	default:
		// lib/api/src/grpc/conversions.rs, from_grpc_dist / TryFrom<Distance>.
		return nil, errInvalid("Malformed distance parameter: %s", p.GetDistance())
	}
	if p.MultivectorConfig != nil {
		return nil, errUnimplemented("multivectors")
	}
	if err := validateQuantization(p.GetQuantizationConfig()); err != nil {
		return nil, err
	}
	out := proto.Clone(p).(*qdrant.VectorParams)
	if out.Datatype != nil && *out.Datatype == qdrant.Datatype_Default {
		out.Datatype = nil
	}
	return out, nil
}

func validateQuantization(q *qdrant.QuantizationConfig) error {
	if q != nil && q.GetQuantization() == nil {
		return errInvalid("QuantizationConfig should always have a value")
	}
	return nil
}

// applyUpdate applies an UpdateCollection request to a copy of the configuration, following
// lib/collection/src/collection/collection_ops.rs (update_*_from_diff) and
// lib/collection/src/operations/config_diff.rs:
//   - params, hnsw_config, optimizers_config, strict_mode: diffs MERGED into what is stored;
//   - quantization_config: the diff REPLACES the whole block, `Disabled` removes it;
//   - vectors_config: per vector, hnsw merged, quantization replaced/removed, on_disk set;
//   - metadata: merged, a null value removes its key.
func applyUpdate(cfg *collectionConfig, req *qdrant.UpdateCollection) (*collectionConfig, error) {
	out := cfg.clone()
	if d := req.GetParams(); d != nil {
		if d.ReplicationFactor != nil {
			out.params.ReplicationFactor = proto.Uint32(*d.ReplicationFactor)
		}
		if d.WriteConsistencyFactor != nil {
			out.params.WriteConsistencyFactor = proto.Uint32(*d.WriteConsistencyFactor)
		}
		if d.OnDiskPayload != nil {
			out.params.OnDiskPayload = *d.OnDiskPayload
		}
		if d.ReadFanOutFactor != nil {
			out.params.ReadFanOutFactor = proto.Uint32(*d.ReadFanOutFactor)
		}
		if d.ReadFanOutDelayMs != nil {
			out.params.ReadFanOutDelayMs = proto.Uint64(*d.ReadFanOutDelayMs)
		}
	}
	if req.HnswConfig != nil {
		proto.Merge(out.hnsw, req.HnswConfig)
	}
	out.optimizers.merge(req.OptimizersConfig)
	if q := req.GetQuantizationConfig(); q != nil {
		out.quantization = quantizationFromDiff(q)
	}
	switch vd := req.GetVectorsConfig().GetConfig().(type) {
	case *qdrant.VectorsConfigDiff_Params:
		p := out.vector()
		if p == nil {
			return nil, errBadInput("Not existing vector name error: ")
		}
		if h := vd.Params.GetHnswConfig(); h != nil {
			if p.HnswConfig == nil {
				p.HnswConfig = &qdrant.HnswConfigDiff{}
			}
			proto.Merge(p.HnswConfig, h)
		}
		if q := vd.Params.GetQuantizationConfig(); q != nil {
			p.QuantizationConfig = quantizationFromDiff(q)
		}
		if vd.Params.OnDisk != nil {
			p.OnDisk = proto.Bool(*vd.Params.OnDisk)
		}
	case *qdrant.VectorsConfigDiff_ParamsMap:
		if len(vd.ParamsMap.GetMap()) > 0 {
			return nil, errUnimplemented("named vectors (VectorsConfigDiff.ParamsMap)")
		}
	}
	if len(req.GetSparseVectorsConfig().GetMap()) > 0 {
		return nil, errUnimplemented("sparse vectors")
	}
	if req.StrictModeConfig != nil {
		if out.strictMode == nil {
			out.strictMode = &qdrant.StrictModeConfig{}
		}
		proto.Merge(out.strictMode, req.StrictModeConfig)
	}
	for k, v := range req.GetMetadata() {
		if out.metadata == nil {
			out.metadata = map[string]*qdrant.Value{}
		}
		if _, isNull := v.GetKind().(*qdrant.Value_NullValue); isNull {
			delete(out.metadata, k)
			continue
		}
		out.metadata[k] = proto.Clone(v).(*qdrant.Value)
	}
	return out, nil
}

// quantizationFromDiff: a scalar/product/binary diff becomes the whole new block; Disabled → none.
func quantizationFromDiff(d *qdrant.QuantizationConfigDiff) *qdrant.QuantizationConfig {
	switch q := d.GetQuantization().(type) {
	case *qdrant.QuantizationConfigDiff_Scalar:
		return &qdrant.QuantizationConfig{Quantization: &qdrant.QuantizationConfig_Scalar{Scalar: proto.Clone(q.Scalar).(*qdrant.ScalarQuantization)}}
	case *qdrant.QuantizationConfigDiff_Product:
		return &qdrant.QuantizationConfig{Quantization: &qdrant.QuantizationConfig_Product{Product: proto.Clone(q.Product).(*qdrant.ProductQuantization)}}
	case *qdrant.QuantizationConfigDiff_Binary:
		return &qdrant.QuantizationConfig{Quantization: &qdrant.QuantizationConfig_Binary{Binary: proto.Clone(q.Binary).(*qdrant.BinaryQuantization)}}
	default: // Disabled
		return nil
	}
}

// validateUpdate performs the checks Qdrant's request conversion makes before it looks the
// collection up (lib/collection/src/operations/conversions.rs, TryFrom<CollectionParamsDiff> and
// TryFrom<QuantizationConfigDiff>).
func validateUpdate(req *qdrant.UpdateCollection) error {
	// CollectionParamsDiff.replication_factor and .write_consistency_factor are `range(min = 1)`
	// (lib/api/build.rs); the diff has no shard_number at all: the shard count is fixed at
	// creation (only resharding, a cluster operation, changes it).
	if p := req.GetParams(); p != nil {
		if err := validateMinOne(
			field{"params.replication_factor", p.ReplicationFactor},
			field{"params.write_consistency_factor", p.WriteConsistencyFactor},
		); err != nil {
			return err
		}
	}
	diffs := []*qdrant.QuantizationConfigDiff{req.GetQuantizationConfig(), req.GetVectorsConfig().GetParams().GetQuantizationConfig()}
	for _, q := range diffs {
		if q != nil && q.GetQuantization() == nil {
			return errInvalid("Quantization type is not specified")
		}
	}
	return nil
}

// collectionsService implements qdrant.Collections. Aliases, cluster and shard-key calls are left
// to UnimplementedCollectionsServer.
type collectionsService struct {
	qdrant.UnimplementedCollectionsServer
	data *store
}

func (cs *collectionsService) Create(_ context.Context, req *qdrant.CreateCollection) (*qdrant.CollectionOperationResponse, error) {
	start := time.Now()
	cfg, err := configFromCreate(req)
	if err != nil {
		return nil, err
	}
	if err := cs.data.createCollection(req.GetCollectionName(), cfg); err != nil {
		return nil, err
	}
	return &qdrant.CollectionOperationResponse{Result: true, Time: elapsed(start)}, nil
}

func (cs *collectionsService) Get(_ context.Context, req *qdrant.GetCollectionInfoRequest) (*qdrant.GetCollectionInfoResponse, error) {
	start := time.Now()
	info, ok := cs.data.collectionInfo(req.GetCollectionName())
	if !ok {
		return nil, errCollectionNotFound(req.GetCollectionName())
	}
	return &qdrant.GetCollectionInfoResponse{Result: info, Time: elapsed(start)}, nil
}

// List answers in name order; Qdrant's order is that of a hash map, so callers must not rely on it.
func (cs *collectionsService) List(context.Context, *qdrant.ListCollectionsRequest) (*qdrant.ListCollectionsResponse, error) {
	start := time.Now()
	names := cs.data.collectionNames()
	resp := &qdrant.ListCollectionsResponse{}
	for _, n := range names {
		resp.Collections = append(resp.Collections, &qdrant.CollectionDescription{Name: n})
	}
	resp.Time = elapsed(start)
	return resp, nil
}

func (cs *collectionsService) CollectionExists(_ context.Context, req *qdrant.CollectionExistsRequest) (*qdrant.CollectionExistsResponse, error) {
	start := time.Now()
	_, ok := cs.data.collectionInfo(req.GetCollectionName())
	return &qdrant.CollectionExistsResponse{Result: &qdrant.CollectionExists{Exists: ok}, Time: elapsed(start)}, nil
}

func (cs *collectionsService) Update(_ context.Context, req *qdrant.UpdateCollection) (*qdrant.CollectionOperationResponse, error) {
	start := time.Now()
	if err := validateUpdate(req); err != nil {
		return nil, err
	}
	if err := cs.data.updateCollection(req); err != nil {
		return nil, err
	}
	return &qdrant.CollectionOperationResponse{Result: true, Time: elapsed(start)}, nil
}

// Delete of a missing collection is not an error in Qdrant: the table of contents answers
// Ok(false) (lib/storage/src/content_manager/toc/collection_meta_ops.rs, delete_collection), and
// the go-client turns result=false into an error of its own ("failed to delete collection").
func (cs *collectionsService) Delete(_ context.Context, req *qdrant.DeleteCollection) (*qdrant.CollectionOperationResponse, error) {
	start := time.Now()
	ok := cs.data.deleteCollection(req.GetCollectionName())
	return &qdrant.CollectionOperationResponse{Result: ok, Time: elapsed(start)}, nil
}

// --- store side -------------------------------------------------------------------------------

// createCollection follows lib/storage/src/content_manager/toc/create_collection.rs: the name is
// checked first, then the zero factors (StorageError::BadInput there).
func (s *store) createCollection(name string, cfg *collectionConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.collections[name]; ok {
		return errCollectionExists(name)
	}
	p := cfg.params
	switch {
	case p.ShardNumber == 0:
		return errBadInput("`shard_number` cannot be 0")
	case p.GetReplicationFactor() == 0:
		return errBadInput("`replication_factor` cannot be 0")
	case p.GetWriteConsistencyFactor() == 0:
		return errBadInput("`write_consistency_factor` cannot be 0")
	}
	s.collections[name] = &collection{cfg: cfg, points: map[pointID]*point{}, schema: map[string]*qdrant.PayloadSchemaInfo{}}
	return nil
}

func (s *store) updateCollection(req *qdrant.UpdateCollection) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.collections[req.GetCollectionName()]
	if !ok {
		return errCollectionNotFound(req.GetCollectionName())
	}
	cfg, err := applyUpdate(c.cfg, req)
	if err != nil {
		return err
	}
	c.cfg = cfg
	return nil
}

func (s *store) deleteCollection(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.collections[name]
	delete(s.collections, name)
	return ok
}

func (s *store) collectionNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.collections))
	for n := range s.collections {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (s *store) pointCount(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.collections[name]; ok {
		return len(c.points)
	}
	return 0
}

// collectionInfo renders CollectionInfo. What the double cannot know is fixed: status Green and
// optimizers ok (nothing runs in the background), one segment unless default_segment_number says
// more (Qdrant picks a CPU-dependent number), and indexed_vectors_count estimated the way the
// indexing threshold works: vectors count as indexed once their size reaches indexing_threshold KB
// (0 disables indexing).
func (s *store) collectionInfo(name string) (*qdrant.CollectionInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.collections[name]
	if !ok {
		return nil, false
	}
	n := uint64(len(c.points))
	indexed := uint64(0)
	if t := c.cfg.optimizers.indexingThreshold; t != nil && *t > 0 {
		if vp := c.cfg.vector(); vp != nil && n*vp.GetSize()*4/1024 >= *t {
			indexed = n
		}
	}
	segments := c.cfg.optimizers.defaultSegmentNumber
	if segments == 0 {
		segments = 1
	}
	info := &qdrant.CollectionInfo{
		Status:              qdrant.CollectionStatus_Green,
		OptimizerStatus:     &qdrant.OptimizerStatus{Ok: true},
		SegmentsCount:       segments,
		Config:              c.cfg.report(),
		PayloadSchema:       map[string]*qdrant.PayloadSchemaInfo{},
		PointsCount:         proto.Uint64(n),
		IndexedVectorsCount: proto.Uint64(indexed),
		UpdateQueue:         &qdrant.UpdateQueueInfo{},
	}
	for key, sch := range c.schema {
		out := proto.Clone(sch).(*qdrant.PayloadSchemaInfo)
		out.Points = proto.Uint64(c.countWithField(key))
		info.PayloadSchema[key] = out
	}
	return info, true
}

func valueOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func copyU64(p *uint64) *uint64 {
	if p == nil {
		return nil
	}
	return proto.Uint64(*p)
}

func copyBool(p *bool) *bool {
	if p == nil {
		return nil
	}
	return proto.Bool(*p)
}

func cloneValueMap(m map[string]*qdrant.Value) map[string]*qdrant.Value {
	if m == nil {
		return nil
	}
	out := make(map[string]*qdrant.Value, len(m))
	for k, v := range m {
		out[k] = proto.Clone(v).(*qdrant.Value)
	}
	return out
}
