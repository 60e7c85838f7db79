package vector

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/google/uuid"
)

// pointNamespace is the UUIDv5 namespace of point ids: the standard URL namespace
// (6ba7b811-9dad-11d1-80b4-00c04fd430c8), with the name "<document_id>:<chunk_index>". It is
// frozen: changing it would orphan every point already stored (re-upserts would no longer
// overwrite them).
var pointNamespace = uuid.NameSpaceURL

// PointID is the point id of a document's chunk: UUIDv5(NameSpaceURL, "document_id:chunk_index").
// Deterministic, so re-upserting a chunk overwrites it in place.
func PointID(docID string, chunk int) string {
	return uuid.NewSHA1(pointNamespace, []byte(docID+":"+strconv.Itoa(chunk))).String()
}

// Payload keys, shared with anything that reads the collection directly (the operator's
// tooling, Qdrant's dashboard).
const (
	KeyDocumentID = "document_id"
	KeyName       = "name"
	KeyChunkIndex = "chunk_index"
	KeyText       = "text"
	KeyTags       = "tags"
	KeyPage       = "page"
	KeySection    = "section"
)

// ErrCollectionMismatch is wrapped when the stored collection's vector size or distance differs
// from the configured one.
var ErrCollectionMismatch = errors.New("vector collection does not match the configuration")

// distance is a collection's metric.
type distance int

const (
	cosine distance = iota
	dot
	euclid
	manhattan
)

func parseDistance(s string) (distance, error) {
	switch s {
	case "Cosine":
		return cosine, nil
	case "Dot":
		return dot, nil
	case "Euclid":
		return euclid, nil
	case "Manhattan":
		return manhattan, nil
	}
	return 0, fmt.Errorf("vector: unknown distance %q (want Cosine, Dot, Euclid or Manhattan)", s)
}

func (d distance) String() string {
	return [...]string{"Cosine", "Dot", "Euclid", "Manhattan"}[d]
}

// lowerIsBetter: Euclid and Manhattan are distances. Store reports every score as "higher is
// better", so their hits carry the negated distance and a threshold t means distance <= -t.
func (d distance) lowerIsBetter() bool { return d == euclid || d == manhattan }

// validateChunks checks a whole upsert before anything is written, so a bad chunk fails the
// call without a partial write.
func validateChunks(chunks []Chunk, size int) error {
	for i, c := range chunks {
		if c.DocumentID == "" {
			return fmt.Errorf("vector: chunk %d has no document id", i)
		}
		if c.ChunkIndex < 0 {
			return fmt.Errorf("vector: chunk %d of %s has negative index %d", i, c.DocumentID, c.ChunkIndex)
		}
		if len(c.Vector) != size {
			return fmt.Errorf("%w: chunk %s:%d has %d dimensions, the collection %d", ErrDimension, c.DocumentID, c.ChunkIndex, len(c.Vector), size)
		}
		for _, x := range c.Vector {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("vector: chunk %s:%d has a non-finite component", c.DocumentID, c.ChunkIndex)
			}
		}
	}
	return nil
}

func checkQuery(v []float32, size int) error {
	if len(v) != size {
		return fmt.Errorf("%w: query has %d dimensions, the collection %d", ErrDimension, len(v), size)
	}
	return nil
}

func defaultLimit(n int) int {
	if n <= 0 {
		return 10
	}
	return n
}
