package enroll

import "context"

// AddToGroup puts each agent of pcs in group as well, by actor by: each
// keeps its other groups and changes as SetGroups changes it (an invalid
// group is ErrInvalid). It stops at the first agent it cannot change
// (store.ErrNotFound for one never seen); those before it stay changed.
func (s *Service) AddToGroup(ctx context.Context, group string, pcs []string, by string) error {
	for _, pc := range pcs {
		a, err := s.st.Agent(ctx, pc)
		if err != nil {
			return err
		}
		if _, err := s.SetGroups(ctx, pc, append(a.Groups, group), by); err != nil {
			return err
		}
	}
	return nil
}
