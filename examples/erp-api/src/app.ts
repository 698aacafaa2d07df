// The ERP API: a few routes behind offline token verification.
import express, { type Express } from 'express';
import type { FeedFollower } from './feed.js';
import { authenticate, requireAcr, requireRole, requireScopes, token } from './middleware.js';
import type { Verify } from './verify.js';

export interface AppDeps {
  verify: Verify;
  feed?: FeedFollower;
}

export function createApp({ verify, feed }: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.get('/healthz', (_req, res) => {
    res.json({
      ok: true,
      feed: feed
        ? { caughtUp: feed.caughtUp, lastSuccessAt: feed.lastSuccessAt, applied: feed.applied }
        : null,
    });
  });

  const api = express.Router();
  api.use(authenticate(verify));
  api.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });

  // Anyone with the ERP scope and the staff role reads orders.
  api.get('/orders', requireScopes('erp:read'), requireRole('staff', 'finance'), (_req, res) => {
    const t = token(res);
    res.json({
      user: t.sub,
      at: new Date().toISOString(),
      orders: [
        { id: 'SO-1001', customer: 'Ackermann GmbH', total: 1290.5 },
        { id: 'SO-1002', customer: 'Brandt & Söhne', total: 384.0 },
      ],
    });
  });

  // Payroll is sensitive: the finance role and a second factor at sign-in (acr "2").
  api.get('/payroll', requireScopes('erp:read'), requireRole('finance'), requireAcr('2'), (_req, res) => {
    res.json({ user: token(res).sub, payroll: [{ employee: 'E-17', net: 3120.0 }] });
  });

  app.use('/api', api);
  app.use((_req, res) => {
    res.status(404).json({ error: 'not_found' });
  });
  return app;
}
