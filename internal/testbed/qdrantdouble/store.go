package qdrantdouble

import (
	"bytes"
	"sort"
	"strconv"
	"sync"

	"github.com/google/uuid"
	"github.com/qdrant/go-client/qdrant"
)

// store holds every collection; one mutex guards it all (the double is for tests, not speed).
type store struct {
	mu          sync.Mutex
	collections map[string]*collection
}

func newStore() *store { return &store{collections: map[string]*collection{}} }

type collection struct {
	cfg           *collectionConfig
	points        map[pointID]*point
	schema        map[string]*qdrant.PayloadSchemaInfo // payload indexes, by field name
	nextOperation uint64                               // operation number of the next update (WAL-like, from 0)
}

// point is a stored point. The vector is kept as Qdrant keeps it: normalised for Cosine.
// The payload is kept as plain JSON-like Go values (see fromValue).
type point struct {
	id      pointID
	vector  []float32
	payload map[string]any
	version uint64 // operation number that last changed the point (ScoredPoint.version)
}

// pointID is Qdrant's ExtendedPointId: an unsigned number or a UUID. Ordering (used by Scroll) is
// that of the Rust enum: every numeric id before every UUID, UUIDs by their bytes.
type pointID struct {
	isUUID bool
	num    uint64
	uuid   uuid.UUID
}

func (id pointID) String() string {
	if id.isUUID {
		return id.uuid.String()
	}
	return strconv.FormatUint(id.num, 10)
}

func (id pointID) less(o pointID) bool {
	if id.isUUID != o.isUUID {
		return !id.isUUID
	}
	if !id.isUUID {
		return id.num < o.num
	}
	return bytes.Compare(id.uuid[:], o.uuid[:]) < 0
}

func (id pointID) proto() *qdrant.PointId {
	if id.isUUID {
		return qdrant.NewIDUUID(id.uuid.String())
	}
	return qdrant.NewIDNum(id.num)
}

// parsePointID converts a request id like lib/api/src/grpc/conversions.rs (TryFrom<PointId>):
// "Unable to parse UUID: …" and "No ID options provided" are its messages. UUIDs are answered in
// their canonical lower-case hyphenated form whatever form they came in.
func parsePointID(p *qdrant.PointId) (pointID, error) {
	switch v := p.GetPointIdOptions().(type) {
	case *qdrant.PointId_Num:
		return pointID{num: v.Num}, nil
	case *qdrant.PointId_Uuid:
		u, err := uuid.Parse(v.Uuid)
		if err != nil {
			return pointID{}, errInvalid("Unable to parse UUID: %s", v.Uuid)
		}
		return pointID{isUUID: true, uuid: u}, nil
	default:
		return pointID{}, errInvalid("No ID options provided")
	}
}

func parsePointIDs(ids []*qdrant.PointId) ([]pointID, error) {
	out := make([]pointID, 0, len(ids))
	for _, p := range ids {
		id, err := parsePointID(p)
		if err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, nil
}

// sortedPoints returns the collection's points in id order.
func (c *collection) sortedPoints() []*point {
	out := make([]*point, 0, len(c.points))
	for _, p := range c.points {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id.less(out[j].id) })
	return out
}

// countWithField counts points with a non-empty value under key (PayloadSchemaInfo.points).
func (c *collection) countWithField(key string) uint64 {
	var n uint64
	for _, p := range c.points {
		if !isEmpty(p.payload, key) {
			n++
		}
	}
	return n
}
