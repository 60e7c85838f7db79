package store

import "syscall"

func statfs(dir string) (Space, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return Space{}, err
	}
	return Space{
		Free:     st.Bavail * uint64(st.Bsize),
		Total:    st.Blocks * uint64(st.Bsize),
		ReadOnly: st.Flags&0x1 != 0, // ST_RDONLY
	}, nil
}
