"""Coupons: campaigns of ERC-721 coupons (the CouponBook), vouchers, redemption and rollback."""
