import { z } from 'zod';

/** What a PingOne action type does. `modifiedAttributes`: act only when one of them changed. */
export const PingOneRule = z.object({
  target: z.enum(['user', 'idp_session', 'group']),
  modifiedAttributes: z.array(z.string().min(1)).min(1).optional(),
});
export type PingOneRule = z.infer<typeof PingOneRule>;

export const PingOneMapping = z.record(
  z.string().regex(/^[A-Z_]+\.[A-Z_]+$/, 'an action type like USER.UPDATED'),
  PingOneRule,
);
export type PingOneMapping = z.infer<typeof PingOneMapping>;

const user = { target: 'user' } as const;

/** The default mapping from ../shared/docs/identity-events.md. Configuration replaces it, not code. */
export const DEFAULT_PINGONE_MAPPING: PingOneMapping = {
  'SESSION.DELETED': { target: 'idp_session' },
  'USER.DELETED': user,
  'USER.LOCKED': user,
  'USER.UPDATED': {
    target: 'user',
    modifiedAttributes: ['enabled', 'population', 'accountId', 'memberOfGroupIDs'],
  },
  'USER.MOVED': user,
  'MEMBER_OF_GROUP.CREATED': user,
  'MEMBER_OF_GROUP.DELETED': user,
  'ROLE_ASSIGNMENT.CREATED': user,
  'ROLE_ASSIGNMENT.DELETED': user,
  'PASSWORD.RESET': user,
  'PASSWORD.SET': user,
  'PASSWORD.FORCE_CHANGE': user,
  'PASSWORD.RECOVERY': user,
  'USER_CREDENTIAL.REVOKED': user,
  'OAUTH_CONSENT.REVOKED': user,
  'DEVICE.DELETED': user,
  'DEVICE.BLOCKED': user,
  'GROUP.DELETED': { target: 'group' },
};
