// Express middleware: a verified bearer token, then scopes, roles and the authentication level.
import type { NextFunction, Request, Response } from 'express';
import type { AccessToken, Verify } from './verify.js';

function challenge(res: Response, status: number, error: string, description: string, extra = '') {
  res
    .status(status)
    .set('WWW-Authenticate', `Bearer error="${error}", error_description="${description}"${extra}`)
    .json({ error, error_description: description });
}

export function token(res: Response): AccessToken {
  return res.locals.token as AccessToken;
}

/// RFC 6750: a bearer token in the Authorization header, verified offline.
export function authenticate(verify: Verify) {
  return async (req: Request, res: Response, next: NextFunction) => {
    const header = req.get('authorization') ?? '';
    const m = /^Bearer ([A-Za-z0-9\-_.~+/]+=*)$/.exec(header);
    if (!m?.[1]) {
      res.status(401).set('WWW-Authenticate', 'Bearer').json({ error: 'invalid_token' });
      return;
    }
    try {
      res.locals.token = await verify(m[1]);
    } catch {
      // The reason stays here: a caller learns only that the token is not accepted.
      challenge(res, 401, 'invalid_token', 'the access token is not accepted');
      return;
    }
    next();
  };
}

export function requireScopes(...scopes: string[]) {
  return (_req: Request, res: Response, next: NextFunction) => {
    const granted = new Set((token(res).scope ?? '').split(' '));
    if (!scopes.every((s) => granted.has(s))) {
      challenge(res, 403, 'insufficient_scope', 'more scope needed', `, scope="${scopes.join(' ')}"`);
      return;
    }
    next();
  };
}

/// At least one of `roles`.
export function requireRole(...roles: string[]) {
  return (_req: Request, res: Response, next: NextFunction) => {
    const held = token(res).roles;
    if (!Array.isArray(held) || !roles.some((r) => held.includes(r))) {
      res.status(403).json({ error: 'forbidden', error_description: 'a role is missing' });
      return;
    }
    next();
  };
}

/// RFC 9470 step-up: the token's `acr` must be `acr` (Tessera: "2" = a second factor was used).
export function requireAcr(acr: string) {
  return (_req: Request, res: Response, next: NextFunction) => {
    if (token(res).acr !== acr) {
      challenge(
        res,
        401,
        'insufficient_user_authentication',
        'a second factor is required',
        `, acr_values="${acr}"`,
      );
      return;
    }
    next();
  };
}
