/**
 * A development-only OpenID Provider (oidc-provider, a devDependency) for running the example with
 * no PingOne at hand: its login page takes any user id and any password, and that id becomes the
 * ID token's `sub`. It reads the same OIDC_* variables as the example, registering the example as
 * its one client. Never expose it: it has throw-away keys and no real users.
 */
import Provider from 'oidc-provider';

const env = process.env;
const port = Number(env['DEV_OP_PORT'] || 3003);
const issuer = env['OIDC_ISSUER'] || `http://localhost:${port}`;
const clientId = env['OIDC_CLIENT_ID'] || 'express-example';
const clientSecret = env['OIDC_CLIENT_SECRET'] || 'express-example-dev-secret';
const redirectUri = env['OIDC_REDIRECT_URI'] || 'http://localhost:3002/callback';
const postLogout = env['OIDC_POST_LOGOUT_REDIRECT_URI'];

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: [redirectUri],
      ...(postLogout ? { post_logout_redirect_uris: [postLogout] } : {}),
    },
  ],
  findAccount: (_ctx, sub) => ({
    accountId: sub,
    claims: () => ({ sub, name: `User ${sub}`, email: `${sub}@example.com`, preferred_username: sub }),
  }),
  claims: { openid: ['sub'], email: ['email'], profile: ['name', 'preferred_username'] },
  // The ID token carries the profile claims itself, as PingOne's can be configured to.
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
});

// Loopback only: it signs anyone in as anyone.
const server = provider.listen(port, 'localhost', () => {
  console.log(`development OP at ${issuer} (client ${clientId}, redirect_uri ${redirectUri})`);
});
server.on('error', (err) => {
  console.error(`development OP failed to start: ${err.message}`);
  process.exit(1);
});
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
